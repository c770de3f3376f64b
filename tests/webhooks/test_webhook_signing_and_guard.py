"""Webhook signatures a receiver can verify, and the SSRF guard's refusals (real resolver for `localhost`)."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress

import pytest

from jobs.webhooks.guard import UnsafeWebhook, check_webhook_url, pinned
from jobs.webhooks.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, signed_headers, verify

SECRET = "s3cret"
BODY = b'{"id": "abc", "status": "finished"}'


def test_signature_is_hmac_sha256_over_timestamp_and_body():
    headers = signed_headers(SECRET, BODY, "d1", "job.finished", now=1_700_000_000)
    assert headers[TIMESTAMP_HEADER] == "1700000000"
    expected = hmac.new(SECRET.encode(), b"1700000000." + BODY, hashlib.sha256).hexdigest()
    assert headers[SIGNATURE_HEADER] == f"v1={expected}"
    assert verify(SECRET, "1700000000", headers[SIGNATURE_HEADER], BODY, now=1_700_000_010)


@pytest.mark.parametrize(
    "secret, body, now",
    [
        ("wrong", BODY, 1_700_000_010),  # another secret
        (SECRET, BODY + b" ", 1_700_000_010),  # body changed
        (SECRET, BODY, 1_700_000_000 + 301),  # too old: a replay
    ],
)
def test_verification_refuses_tampering_and_replays(secret, body, now):
    headers = signed_headers(SECRET, BODY, "d1", "job.finished", now=1_700_000_000)
    assert not verify(secret, headers[TIMESTAMP_HEADER], headers[SIGNATURE_HEADER], body, now=now)
    assert not verify(SECRET, None, headers[SIGNATURE_HEADER], BODY, now=now)


@pytest.mark.parametrize(
    "url, reason",
    [
        ("http://10.1.2.3/hook", "private"),
        ("http://169.254.169.254/latest/meta-data/", "metadata"),
        ("http://[::1]:8080/hook", "loopback"),
        ("http://localhost:8080/hook", "loopback"),  # a DNS name resolving to loopback
        ("http://127.0.0.1/hook", "loopback"),
        ("http://[::ffff:127.0.0.1]/hook", "loopback"),  # IPv4-mapped IPv6
        ("http://192.168.0.10/hook", "private"),
        ("http://0.0.0.0/hook", "unspecified"),
        ("http://100.100.100.200/hook", "not a public address"),  # shared (carrier) space
    ],
)
def test_internal_addresses_are_refused_without_the_allow_list(url, reason):
    with pytest.raises(UnsafeWebhook, match=reason):
        check_webhook_url(url)


@pytest.mark.parametrize(
    "url, message",
    [
        ("ftp://example.com/x", "http:// or https://"),
        ("file:///etc/passwd", "http:// or https://"),
        ("http:///nohost", "no host"),
        ("http://user:pw@93.184.216.34/", "credentials"),
        ("http://host.invalid/hook", "does not resolve"),
        ("http://93.184.216.34:99999/", "malformed"),
    ],
)
def test_malformed_urls_are_refused(url, message):
    with pytest.raises(UnsafeWebhook, match=message):
        check_webhook_url(url)


def test_allow_list_permits_named_hosts_and_networks():
    assert str(check_webhook_url("http://127.0.0.1:9/x", ["127.0.0.1"]).address) == "127.0.0.1"
    assert str(check_webhook_url("http://10.1.2.3/x", ["10.0.0.0/8"]).address) == "10.1.2.3"
    assert check_webhook_url("http://localhost:9/x", ["localhost"]).host == "localhost"
    with pytest.raises(UnsafeWebhook):
        check_webhook_url("http://10.1.2.3/x", ["127.0.0.1", "192.168.0.0/16"])


def test_every_resolved_address_must_pass():
    """A name with one public and one private address is refused (either could be used)."""

    def resolver(host: str, port: int) -> list[str]:
        return ["93.184.216.34", "10.0.0.5"]

    with pytest.raises(UnsafeWebhook, match="10.0.0.5"):
        check_webhook_url("https://hooks.example.com/x", resolver=resolver)
    public = check_webhook_url("https://hooks.example.com/x", resolver=lambda h, p: ["93.184.216.34"])
    assert public.address == ipaddress.ip_address("93.184.216.34")


def test_deliveries_connect_to_the_checked_address():
    checked = check_webhook_url(
        "https://hooks.example.com:8443/p?q=1", resolver=lambda h, p: ["2606:2800::1"]
    )
    target, headers, extensions = pinned(checked)
    assert target == "https://[2606:2800::1]:8443/p?q=1"
    assert headers == {"Host": "hooks.example.com:8443"}
    assert extensions == {"sni_hostname": "hooks.example.com"}
