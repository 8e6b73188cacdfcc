"""Rundfunk's pure domain: values in, decisions out — no I/O, no ORM, no framework, no async.

Keyword rules, the delivery state machine, personalization, rate-limit math, the
customer-service window and the error tree live here; every other layer imports them.
"""
