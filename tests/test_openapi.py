"""The OpenAPI document is generated from the routes and the models the views validate with:
it lists every REST route and nothing else, is a valid OpenAPI 3.1 document, and what the
real gateway answers fits the models it names."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
from flask import Flask
from openapi_spec_validator import validate

from gateway.schema import ApiErrorBody, CountResult, SessionView, StoredCount
from gateway.server import GatewayServer
from gateway.server.openapi import API_PREFIX, UndocumentedRoute, openapi_spec, operation

from .server_support import new_token, running_gateway, shelf_jpeg


@pytest.fixture(scope="module")
def gw(triton, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    with running_gateway(tmp_path_factory.mktemp("gw-openapi"), triton.url) as server:
        yield server


@pytest.fixture(scope="module")
def walker(gw: GatewayServer) -> str:
    return new_token(gw.settings.data_dir, "openapi-walker")


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def served(gw: GatewayServer, token: str) -> dict[str, Any]:
    response = requests.get(f"{gw.base_url}{API_PREFIX}/openapi.json", headers=auth(token),
                            timeout=10)
    assert response.status_code == 200
    return response.json()


def test_the_served_document_lists_exactly_the_routes(gw: GatewayServer, walker: str) -> None:
    spec = served(gw, walker)
    validate(spec)  # a valid OpenAPI 3.1 document (refs resolve, schemas well formed)
    documented = {(path, method) for path, item in spec["paths"].items() for method in item}
    routes = set()
    for rule in gw.app.url_map.iter_rules():
        if rule.rule.startswith(API_PREFIX + "/"):
            path = rule.rule.removeprefix(API_PREFIX)
            for name in rule.arguments:
                path = path.replace(f"<{name}>", "{" + name + "}")
            routes |= {(path, m.lower()) for m in rule.methods - {"HEAD", "OPTIONS"}}
    assert documented == routes and len(routes) > 15
    assert spec["paths"]["/healthz"]["get"]["security"] == []
    assert "401" in spec["paths"]["/counts/{count_id}"]["patch"]["responses"]
    item = spec["paths"]["/counts/{count_id}/photo"]["get"]
    assert item["parameters"][0] == {"name": "count_id", "in": "path", "required": True,
                                     "schema": {"type": "string"}}
    # The correction schema is the model's: the same rules the WebSocket applies.
    correction = spec["components"]["schemas"]["Correction"]
    assert correction["properties"]["quantity"]["minimum"] == 0
    assert set(correction["required"]) == {"sku", "quantity"}


def test_what_the_gateway_answers_fits_the_documented_models(gw: GatewayServer,
                                                             walker: str) -> None:
    posted = requests.post(f"{gw.base_url}{API_PREFIX}/counts", headers=auth(walker),
                           files={"photo": ("shelf.jpg", shelf_jpeg(11), "image/jpeg")},
                           timeout=120)
    assert posted.status_code == 200, posted.text
    result = CountResult.model_validate(posted.json())
    assert result.rows and result.count_id
    stored = requests.get(f"{gw.base_url}{API_PREFIX}/counts/{result.count_id}",
                          headers=auth(walker), timeout=10)
    assert StoredCount.model_validate(stored.json()).rows == result.rows
    session = requests.get(f"{gw.base_url}{API_PREFIX}/sessions/{result.session}",
                           headers=auth(walker), timeout=10)
    assert [c.id for c in SessionView.model_validate(session.json()).counts] == [
        result.count_id]
    refused = requests.patch(f"{gw.base_url}{API_PREFIX}/counts/{result.count_id}",
                             headers=auth(walker), json={"sku": "X", "quantity": "3"},
                             timeout=10)
    assert refused.status_code == 400
    error = ApiErrorBody.model_validate(refused.json())
    assert error.code == "bad_request" and error.message.startswith("quantity")


def test_a_route_without_a_declared_operation_fails_the_document() -> None:
    app = Flask("t")

    @app.get(API_PREFIX + "/declared")
    @operation("declared", responses={200: ({"type": "object"}, "ok")})
    def declared() -> str:
        return ""

    assert set(openapi_spec(app)["paths"]) == {"/declared"}

    @app.get(API_PREFIX + "/forgotten/<item>")
    def forgotten(item: str) -> str:
        return item

    with pytest.raises(UndocumentedRoute, match="forgotten"):
        openapi_spec(app)
