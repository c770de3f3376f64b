"""The signature a webhook receiver checks: HMAC-SHA256 over `<timestamp>.<body>` with the shared secret.

Headers of every delivery:
  X-BootPIG-Timestamp   Unix seconds when this attempt was signed (refuse old ones: replay protection)
  X-BootPIG-Signature   `v1=<hex HMAC-SHA256(secret, timestamp + "." + body)>`
  X-BootPIG-Delivery    id of the delivery, the same on every retry (deduplicate with it)
  X-BootPIG-Event       `job.finished`, `job.failed` or `job.canceled`
"""

from __future__ import annotations

import hashlib
import hmac
import time

TIMESTAMP_HEADER = "X-BootPIG-Timestamp"
SIGNATURE_HEADER = "X-BootPIG-Signature"
DELIVERY_HEADER = "X-BootPIG-Delivery"
EVENT_HEADER = "X-BootPIG-Event"
SCHEME = "v1"
DEFAULT_TOLERANCE = 300  # seconds a receiver should accept a signature for


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """`v1=<hex>`: the timestamp is signed with the body, so an old delivery cannot be replayed as new."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"{SCHEME}={digest}"


def signed_headers(secret: str, body: bytes, delivery_id: str, event: str, now: float | None = None) -> dict:
    timestamp = int(time.time() if now is None else now)
    return {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: signature(secret, timestamp, body),
        DELIVERY_HEADER: delivery_id,
        EVENT_HEADER: event,
    }


def verify(
    secret: str,
    timestamp: str | None,
    signature_header: str | None,
    body: bytes,
    tolerance: float = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> bool:
    """What a receiver runs (also the reference for the docs' snippet): signature valid and recent."""
    if not timestamp or not signature_header or not timestamp.isdigit():
        return False
    if abs((time.time() if now is None else now) - int(timestamp)) > tolerance:
        return False
    return hmac.compare_digest(signature(secret, int(timestamp), body), signature_header)
