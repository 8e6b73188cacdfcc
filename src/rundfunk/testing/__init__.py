"""Test doubles of the messengers Rundfunk talks to, shared by tests and benchmarks.

``fake_graph`` is a WhatsApp Cloud API (Graph API) server on loopback. Nothing is
imported here, so ``python -m rundfunk.testing.fake_graph`` runs the module once.
"""
