"""Test doubles of the messengers Rundfunk talks to, shared by tests and benchmarks.

``fake_graph`` is a WhatsApp Cloud API (Graph API) server on loopback, also runnable as
``python -m rundfunk.testing.fake_graph``. Nothing is imported here, so importing one
double does not load the others.
"""
