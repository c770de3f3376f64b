"""Optional API keys: off by default (local use); with keys set, each key is its own client."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable

from fastapi import Request

from app.errors import APIError
from bootpig.settings import Settings


def owner_of(api_key: str | None) -> str:
    """Jobs remember a hash of the key that created them, never the key itself."""
    if api_key is None:
        return "public"
    return hashlib.sha256(api_key.encode()).hexdigest()[:24]


def presented_key(request: Request) -> str | None:
    """`X-API-Key: k` or `Authorization: Bearer k`."""
    key = request.headers.get("x-api-key")
    if key:
        return key
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def authenticator(settings: Settings) -> Callable[[Request], str]:
    """A dependency returning the caller's owner id (a hash of its key), or raising 401."""
    keys = [key.encode() for key in settings.api_keys]

    def owner_of_request(request: Request) -> str:
        if not keys:
            return owner_of(None)
        key = presented_key(request)
        # Compare against every key in constant time so the timing reveals nothing.
        valid = key is not None and any([secrets.compare_digest(key.encode(), k) for k in keys])
        if not valid:
            raise APIError(401, "unauthorized", "a valid API key is required (X-API-Key header)", "X-API-Key")
        return owner_of(key)

    return owner_of_request
