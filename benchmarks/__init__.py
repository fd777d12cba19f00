"""Benchmarks of msal_wsgi's protected-request hot path (not part of the test suite).

Run everything with ``python -m benchmarks`` (see README.md, "Performance").
"""
