"""Each dialect renders its own error body; the AI/ML API body stays exactly as it was."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.testclient import TestClient

from reelforge.api.errors import ErrorInfo, install_error_handlers
from reelforge.errors import Conflict, FieldError, InvalidRequest


def openai_like(request: Request, info: ErrorInfo) -> dict[str, Any]:
    first = info.errors[0].field if info.errors else None
    return {"error": {"message": info.message, "type": info.code, "param": first}}


def make_client() -> TestClient:
    router = APIRouter()

    async def invalid() -> None:
        raise InvalidRequest([FieldError("size", "must be 1280x720"), FieldError("n", "bad")])

    async def conflict() -> None:
        raise Conflict("already used", field="Idempotency-Key")

    for prefix in ("/v1", "/v2"):
        router.add_api_route(f"{prefix}/invalid", invalid, methods=["POST"])
        router.add_api_route(f"{prefix}/conflict", conflict, methods=["POST"])
    app = FastAPI()
    install_error_handlers(app, [router], renderers=[("/v1/", openai_like)])
    app.include_router(router)
    return TestClient(app, base_url="http://127.0.0.1")


def test_a_dialects_prefix_gets_its_own_body() -> None:
    client = make_client()
    response = client.post("/v1/invalid")
    assert response.status_code == 400
    assert response.json() == {
        "error": {
            "message": "size: must be 1280x720; n: bad",
            "type": "invalid_request",
            "param": "size",
        }
    }
    assert client.post("/v1/conflict").json()["error"] == {
        "message": "already used",
        "type": "conflict",
        "param": "Idempotency-Key",
    }
    # A path no dialect claims (or no route at all) still gets the AI/ML API body.
    assert set(client.get("/nowhere").json()) == {
        "message",
        "path",
        "requestId",
        "statusCode",
        "timestamp",
    }


def test_other_paths_keep_the_aimlapi_body() -> None:
    body = make_client().post("/v2/invalid").json()
    assert set(body) == {"message", "path", "requestId", "statusCode", "timestamp", "errors"}
    assert body["statusCode"] == 400 and body["path"] == "/v2/invalid"
    assert body["errors"] == [
        {"field": "size", "message": "must be 1280x720"},
        {"field": "n", "message": "bad"},
    ]
