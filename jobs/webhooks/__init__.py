"""Signed webhooks: tell a client's server that its job ended, instead of making it poll.

`signing` (the HMAC scheme receivers verify), `guard` (SSRF: which URLs may be called), `delivery` (the
Redis-backed queue with bounded retries, served by a thread in every worker and API process).
"""
