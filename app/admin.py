"""The operator's key: detail about workers and jobs that no client (with or without an API key) sees.

Client API keys only ever see their own jobs; what runs where, on which host and which model folder, and
which job ids are in flight is for operators only, so it needs `admin_key`, compared in constant time.
"""

from __future__ import annotations

import secrets

from fastapi import Request

from app.errors import APIError
from bootpig.settings import Settings

ADMIN_HEADER = "X-Admin-Key"


def is_admin(request: Request, settings: Settings) -> bool:
    """True for a valid admin key, False when none is sent; 401 for a wrong one (or with none set)."""
    presented = request.headers.get(ADMIN_HEADER)
    if presented is None:
        return False
    if settings.admin_key and secrets.compare_digest(presented.encode(), settings.admin_key.encode()):
        return True
    raise APIError(401, "unauthorized", "the admin key is not valid", ADMIN_HEADER)
