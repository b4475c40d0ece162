"""schemathesis against /openapi.json of the real server: no 5xx, every response as documented.

Every operation of the OpenAPI document gets generated requests (valid and
invalid ones), sent as a signed-in principal to the live server; each
response must have a documented status, content type, headers and body
schema, and none may be a 5xx.  The SSE stream is left out: it never ends by
itself (test_stream.py covers it).

schemathesis' own ``from_fixture`` loader does not run under pytest 9 (it
reads a private attribute pytest dropped), so the operations are listed from
the app in-process and each one's generated cases run through the Python API.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from live_server import LiveServer
from schemathesis import BaseSchema, Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from creative_hub.hub import Hub
from creative_hub.server import create_app

pytestmark = pytest.mark.sqlite

ENDLESS = {("GET", "/v1/topics/{topic}/stream")}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
EXAMPLES = 25  # per operation and mode


def _breakable(parameter: dict[str, Any]) -> bool:
    """Whether a parameter has a value that is invalid (not every string is fine)."""
    schema = {k: v for k, v in parameter.get("schema", {}).items() if k not in ("title", "description")}
    return schema != {"type": "string"} or parameter.get("required", False) and parameter["in"] != "path"


def _cases() -> list[object]:
    """(method, path, mode) for every operation; negative mode where there is input to break."""
    doc = create_app(Hub(None)).openapi()  # type: ignore[arg-type]  # the document needs no log
    out: list[object] = []
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if (method.upper(), path) in ENDLESS:
                continue
            modes = [GenerationMode.POSITIVE]
            if op.get("requestBody") or any(_breakable(p) for p in op.get("parameters", [])):
                modes.append(GenerationMode.NEGATIVE)
            for mode in modes:
                out.append(
                    pytest.param(method.upper(), path, mode, id=f"{method.upper()} {path} {mode.value}")
                )
    return out


@pytest.fixture(scope="module")
def api_schema(live: LiveServer) -> BaseSchema:
    return schemathesis.openapi.from_url(live.url + "/openapi.json")


@pytest.mark.parametrize(("method", "path", "mode"), _cases())
def test_operation_answers_as_documented(
    method: str, path: str, mode: GenerationMode, api_schema: BaseSchema, live: LiveServer
) -> None:
    operation = api_schema[path][method]
    headers = live.headers("carol")

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def run(case: Case) -> None:
        case.call_and_validate(headers=headers, checks=CHECKS, timeout=30)

    run()
