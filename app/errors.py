"""One JSON error shape for every 4xx/5xx, naming the offending field; never a stack trace."""

from __future__ import annotations

import logging

import redis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)


class APIError(Exception):
    """A client-facing error: `{"error": {"code", "message", "field", "index"?}}` with an HTTP status."""

    def __init__(
        self, status: int, code: str, message: str, field: str | None = None, index: int | None = None
    ):
        super().__init__(message)
        self.status, self.code, self.message, self.field, self.index = status, code, message, field, index

    def body(self) -> dict:
        error = {"code": self.code, "message": self.message, "field": self.field}
        if self.index is not None:
            error["index"] = self.index
        return {"error": error}


def error_response(
    status: int, code: str, message: str, field: str | None = None, headers: dict | None = None, **extra
) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "field": field, **extra}}
    return JSONResponse(body, status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError) -> JSONResponse:
        headers = {401: {"WWW-Authenticate": "Bearer"}, 408: {"Connection": "close"}}.get(exc.status)
        return JSONResponse(exc.body(), exc.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        field = ".".join(
            str(part) for part in first["loc"] if part not in ("body", "query", "path", "header")
        )
        return error_response(422, "invalid", first["msg"], field or None)

    @app.exception_handler(redis.exceptions.RedisError)
    async def _redis_down(request: Request, exc: redis.exceptions.RedisError) -> JSONResponse:
        log.error("Redis error on %s: %s", request.url.path, exc)
        return error_response(503, "queue_unavailable", "the job queue is unavailable; retry shortly")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed"}
        code = codes.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail), headers=exc.headers)  # 405 keeps Allow

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "internal", "internal server error; the incident was logged")
