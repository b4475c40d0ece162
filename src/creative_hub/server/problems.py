"""RFC 9457 problem details: the one error shape every route answers with.

    return problem(404, "Not found", "no event 'e1'")      # a JSONResponse
    raise NotFound("no event 'e1'")                         # the same, via the handlers below

Hub errors map to statuses in one table (``_STATUS``); FastAPI's request
validation errors (422), Starlette's HTTP errors (404 for an unknown path,
405) and anything unexpected (500) are turned into problem details too, so a
client needs one error parser.  ``PROBLEM_RESPONSES`` documents them in the
OpenAPI schema, which schemathesis checks every response against.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from ..errors import (
    AccessDenied,
    HubError,
    IdConflict,
    NotFound,
    PayloadTooLarge,
    PositionGone,
    UnknownEngine,
    ValidationError,
)

__all__ = ["PROBLEM", "PROBLEM_RESPONSES", "Problem", "error_response", "install_handlers", "problem"]

logger = logging.getLogger(__name__)

PROBLEM = "application/problem+json"


class Problem(BaseModel):
    """An RFC 9457 problem: ``title`` says what kind, ``detail`` says what happened."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(default="about:blank", description="A URI naming the kind of problem")
    title: str = Field(description="Short, the same for every problem of this kind")
    status: int = Field(description="The HTTP status code")
    detail: str = Field(default="", description="What went wrong this time, and what to do")
    field: str | None = Field(default=None, description="The input field at fault (bad input only)")
    rule: str | None = Field(default=None, description="The rule the field broke (bad input only)")
    index: int | None = Field(default=None, description="The event's index in a batch (bad input only)")


def _doc(description: str) -> dict[str, Any]:
    return {"description": description, "model": Problem, "content": {PROBLEM: {}}}


#: The error answers any route may give (documented on every route).
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _doc("Bad request (for example a token in the query string)"),
    401: _doc("Missing, invalid or revoked token"),
    403: _doc("The principal may not do this"),
    404: _doc("No such thing, or one the caller may not see"),
    405: _doc("Method not allowed"),
    409: _doc("An id already used for different content"),
    410: _doc("A position already removed by retention"),
    413: _doc("Body over the size limit"),
    415: _doc("Unsupported content type"),
    422: _doc("Invalid input: names the field and the rule"),
    429: _doc("Rate limit: retry after the Retry-After header's seconds"),
    500: _doc("A bug: the hub logs it"),
    503: _doc("The log (engine) is unavailable"),
}


def problem(
    status: int, title: str, detail: str = "", *, headers: Mapping[str, str] | None = None, **extra: Any
) -> JSONResponse:
    """A problem-details response (``extra`` members are added as they are)."""
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


# Most specific first: PayloadTooLarge is a ValidationError, the Log* errors are LogErrors.
_STATUS: tuple[tuple[type[HubError], int, str], ...] = (
    (PayloadTooLarge, 413, "Payload too large"),
    (ValidationError, 422, "Invalid input"),
    (AccessDenied, 403, "Forbidden"),
    (NotFound, 404, "Not found"),
    (IdConflict, 409, "Conflict"),
    (PositionGone, 410, "Gone"),
    (UnknownEngine, 500, "Misconfigured log"),
)


def error_response(e: HubError) -> JSONResponse:
    """The problem details of a hub error (an unlisted LogError: 503, the log is unavailable)."""
    for cls, status, title in _STATUS:
        if isinstance(e, cls):
            extra: dict[str, Any] = {}
            if isinstance(e, ValidationError):
                extra = {"field": e.field, "rule": e.rule}
                if e.index is not None:
                    extra["index"] = e.index
            if isinstance(e, PositionGone):
                extra = {"earliest": e.earliest}
            return problem(status, title, str(e), **extra)
    return problem(503, "Log unavailable", str(e), headers={"Retry-After": "1"})


def _location(loc: Any) -> str:
    # ("body", "data", 0) -> "body.data[0]"; FastAPI prefixes where the value came from.
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def install_handlers(app: FastAPI) -> None:
    """Answer every error with problem details: hub errors, 422s, 404/405s, and bugs."""

    @app.exception_handler(HubError)
    async def hub_error(request: Request, e: HubError) -> JSONResponse:
        return error_response(e)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, e: RequestValidationError) -> JSONResponse:
        errors = list(e.errors())
        first = errors[0] if errors else {"loc": ("request",), "msg": "invalid"}
        where, rule = _location(first.get("loc", ())), str(first.get("msg", "invalid"))
        detail = "; ".join(f"{_location(x.get('loc', ()))}: {x.get('msg', '')}" for x in errors[:10])
        return problem(422, "Invalid input", detail, field=where, rule=rule)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, e: StarletteHTTPException) -> JSONResponse:
        title = {404: "Not found", 405: "Method not allowed"}.get(e.status_code, "HTTP error")
        detail = e.detail if isinstance(e.detail, str) else ""
        return problem(e.status_code, title, detail, headers=e.headers)

    @app.exception_handler(ClientDisconnect)
    async def gone(request: Request, e: ClientDisconnect) -> JSONResponse:
        # The client left mid-body (or the server cut a too-slow body off): nothing was
        # written, and the answer goes nowhere -- no traceback for it either.
        return problem(400, "Client disconnected", "the request body did not arrive in full")

    @app.exception_handler(OverflowError)
    async def out_of_range(request: Request, e: OverflowError) -> JSONResponse:
        # A number the route accepted but the engine cannot hold (SQLite integers are
        # 64-bit): bad input, not a bug of the hub.
        return problem(
            422, "Invalid input", f"a number is out of range: {e}", field="query", rule="out of range"
        )

    @app.exception_handler(Exception)
    async def bug(request: Request, e: Exception) -> JSONResponse:
        logger.exception("unexpected error on %s %s", request.method, request.url.path)
        return problem(500, "Internal error", "the hub logged the details")
