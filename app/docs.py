"""The interactive API docs (/docs, /redoc) with their scripts served from the installed package.

FastAPI's default pages load Swagger UI and ReDoc from a CDN; a script from there would run on this
origin, next to the API key the web page keeps in localStorage. `fastapi-offline` ships the same assets
as package data, so they are served from here and the CSP can stay at 'self'.
"""

from __future__ import annotations

from importlib.resources import files

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS_URL = "/docs-assets"
ASSETS_DIR = files("fastapi_offline") / "static"


def docs_pages(app: FastAPI) -> dict[str, str]:
    """The HTML of /docs and /redoc (also hashed into the CSP)."""
    title = f"{app.title} API"
    swagger = get_swagger_ui_html(
        openapi_url=app.openapi_url,
        title=title,
        swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
        swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
        swagger_favicon_url=f"{ASSETS_URL}/favicon.png",
    )
    redoc = get_redoc_html(
        openapi_url=app.openapi_url,
        title=title,
        redoc_js_url=f"{ASSETS_URL}/redoc.standalone.js",
        redoc_favicon_url=f"{ASSETS_URL}/favicon.png",
        with_google_fonts=False,
    )
    return {"/docs": swagger.body.decode(), "/redoc": redoc.body.decode()}


def install_docs(app: FastAPI) -> list[str]:
    """Serve the docs pages and their assets on `app` (built with docs_url=None, redoc_url=None)."""
    app.mount(ASSETS_URL, StaticFiles(directory=str(ASSETS_DIR)), name="docs-assets")
    pages = docs_pages(app)
    for path, html in pages.items():
        app.add_api_route(path, _page(html), include_in_schema=False, response_class=HTMLResponse)
    return list(pages.values())


def _page(html: str):
    async def page() -> HTMLResponse:
        return HTMLResponse(html)

    return page
