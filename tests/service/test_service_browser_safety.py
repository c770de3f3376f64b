"""Responses carry nosniff, anti-framing and a CSP; the API docs load no script from another origin."""

from __future__ import annotations

import re

import httpx
import pytest


@pytest.fixture(scope="module")
def client(service):
    with httpx.Client(base_url=service.url, timeout=30) as http:
        yield http


@pytest.mark.parametrize("path", ["/", "/healthz", "/jobs/" + "0" * 32, "/docs", "/openapi.json"])
def test_every_response_has_the_browser_headers(client, path):
    headers = client.get(path).headers
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    csp = dict(part.strip().split(" ", 1) for part in headers["content-security-policy"].split(";"))
    assert csp["frame-ancestors"] == "'none'"
    assert "'unsafe-inline'" not in csp["script-src"] and "http" not in csp["script-src"]


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_docs_assets_come_from_this_service(client, path):
    html = client.get(path).text
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert assets and all(url.startswith("/docs-assets/") for url in assets), assets
    for url in assets:
        response = client.get(url)
        assert response.status_code == 200 and len(response.content) > 1000, url
