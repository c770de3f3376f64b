"""Which webhook URLs the service may call (SSRF guard).

A webhook makes the service send a request to an address the client picked; without a guard a client
could reach Redis, the cloud metadata service or anything else on the internal network. Only http(s)
is allowed, and every address the host resolves to must be globally routable (no loopback, private,
link-local, metadata, multicast or reserved ranges) unless the operator's allow-list names the host or
one of its networks. Deliveries connect to the address checked here (`pinned`), so a DNS answer that
changes between the check and the request (DNS rebinding) cannot redirect them.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]
MAX_URL_LENGTH = 2048
# Metadata services outside the ranges `is_global` already refuses (listed so the refusal says why).
METADATA_ADDRESSES = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}


class UnsafeWebhook(ValueError):
    """The URL is not one the service will call; the message says why (shown to the client)."""


@dataclass(frozen=True)
class CheckedURL:
    url: str
    host: str
    port: int
    address: IPAddress  # the address deliveries connect to


def resolve(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for the host (IPv4 and IPv6)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnsafeWebhook(f"the webhook host {host!r} does not resolve") from exc
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _allowed(host: str, address: IPAddress, allow: Iterable[str]) -> bool:
    for entry in allow:
        if entry.lower() == host:
            return True
        try:
            if address in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue  # a host name entry that is not this host
    return False


def _refusal(address: IPAddress) -> str | None:
    mapped = getattr(address, "ipv4_mapped", None)
    if mapped is not None:  # ::ffff:127.0.0.1 is 127.0.0.1
        address = mapped
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    for kind in ("loopback", "unspecified", "link_local", "private", "multicast", "reserved"):
        if getattr(address, f"is_{kind}"):
            return f"a {kind.replace('_', '-')} address"
    if not address.is_global:
        return "not a public address"
    return None


def check_webhook_url(url: str, allow: Iterable[str] = (), resolver: Resolver = resolve) -> CheckedURL:
    """The URL with the address to connect to, or `UnsafeWebhook` saying why it is refused."""
    allow = list(allow)
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeWebhook(f"the webhook URL is longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise UnsafeWebhook(f"the webhook URL is malformed ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise UnsafeWebhook("the webhook URL must start with http:// or https://")
    host = (parts.hostname or "").lower()
    if not host:
        raise UnsafeWebhook("the webhook URL has no host")
    if parts.username or parts.password:
        raise UnsafeWebhook("the webhook URL must not carry credentials (user:password@)")
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        addresses = [ipaddress.ip_address(a.split("%", 1)[0]) for a in resolver(host, port)]
    if not addresses:
        raise UnsafeWebhook(f"the webhook host {host!r} does not resolve")
    for address in addresses:
        reason = _refusal(address)
        if reason and not _allowed(host, address, allow):
            raise UnsafeWebhook(
                f"the webhook host {host!r} resolves to {address}, {reason}; refused "
                "(the operator can allow it with BOOTPIG_WEBHOOK_ALLOW_HOSTS)"
            )
    return CheckedURL(url=url, host=host, port=port, address=addresses[0])


def pinned(checked: CheckedURL) -> tuple[str, dict[str, str], dict[str, str]]:
    """URL aimed at the checked address, the Host header and (for https) the TLS server name to send."""
    parts = urlsplit(checked.url)
    literal = f"[{checked.address}]" if checked.address.version == 6 else str(checked.address)
    netloc = f"{literal}:{checked.port}"
    target = parts._replace(netloc=netloc).geturl()
    default_port = 443 if parts.scheme == "https" else 80
    name = f"[{checked.host}]" if ":" in checked.host else checked.host
    host_header = name if checked.port == default_port else f"{name}:{checked.port}"
    extensions = {"sni_hostname": checked.host} if parts.scheme == "https" else {}
    return target, {"Host": host_header}, extensions
