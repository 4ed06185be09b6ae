"""OpenAPI 3.1 description of the REST API, served at /api/v1/openapi.json.

Generated, not written: each REST view declares its operation with ``@operation`` (summary,
the pydantic model of its body, its answers), the paths come from the Flask routes themselves
and the schemas from the models in ``gateway.schema`` that the views validate with. A route
without a declaration makes the document fail to build (tests/test_openapi.py), so the
document cannot drift from the code.

apispec assembles the document: it keeps the components and operations of the OpenAPI object
model and checks what is registered, while request validation stays ours (the gateway's own
error shape and codes, the same models on the WebSocket and gRPC; spectree and flask-openapi3
would answer HTTP clients with their own 422 body).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any, TypeVar

from apispec import APISpec
from flask import Flask
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from gateway import __version__
from gateway import schema as models

API_PREFIX = "/api/v1"
REF = "#/components/schemas/{model}"
_IGNORED_METHODS = {"HEAD", "OPTIONS"}
_ARGUMENT = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")

# Every model a view names is a component; these are the ones the document always carries.
COMPONENTS: tuple[type[BaseModel], ...] = (
    models.Row, models.CountResult, models.StoredCount, models.SessionView,
    models.ApiErrorBody, models.Correction, models.LocationAnswer, models.RecountRequest,
    models.ReorderDecision,
    models.LocationList, models.BoxCorrection,
)
Answer = type[BaseModel] | dict[str, Any] | str  # a model, a JSON schema, or a media type
V = TypeVar("V", bound=Callable[..., Any])


@dataclass(frozen=True)
class Operation:
    """What the document says about one view."""

    summary: str
    description: str | None = None
    body: type[BaseModel] | None = None
    form: dict[str, Any] | None = None  # multipart/form-data schema
    headers: dict[str, str] = field(default_factory=dict)  # header name -> description
    query: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> schema
    responses: dict[int, tuple[Answer, str]] = field(default_factory=dict)
    public: bool = False  # no token needed


def operation(summary: str, **details: Any) -> Callable[[V], V]:
    """Declare a view's operation for the generated document."""
    declared = Operation(summary, **details)

    def mark(view: V) -> V:
        view.openapi_operation = declared  # type: ignore[attr-defined]
        return view

    return mark


class UndocumentedRoute(RuntimeError):
    """A REST route whose view declares no operation."""


def openapi_spec(app: Flask) -> dict[str, Any]:
    """The document for every ``/api/v1`` route of ``app``."""
    spec = APISpec(
        title="ShelfCount gateway", version=__version__, openapi_version="3.1.0",
        info={"description": "Shelf photos in, stock-count rows out. Live counting also over "
                             "WebSocket /ws/count and gRPC shelfcount.v1.CountService."},
        servers=[{"url": API_PREFIX}], security=[{"bearer": []}],
    )
    spec.components.security_scheme("bearer", {
        "type": "http", "scheme": "bearer",
        "description": "device token from `shelfcount device add`"})
    for name, component in _components().items():
        spec.components.schema(name, component)
    for path, operations in _paths(app).items():
        spec.path(path=path, operations=operations)
    return spec.to_dict()


@cache
def _components() -> dict[str, dict[str, Any]]:
    _, defs = models_json_schema([(m, "validation") for m in COMPONENTS],
                                 ref_template=REF)
    return defs.get("$defs", {})


def _paths(app: Flask) -> dict[str, dict[str, Any]]:
    paths: dict[str, dict[str, Any]] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if not rule.rule.startswith(API_PREFIX + "/"):  # /healthz is /api/v1/healthz too
            continue
        declared = getattr(app.view_functions[rule.endpoint], "openapi_operation", None)
        if declared is None:
            raise UndocumentedRoute(f"{rule.rule} ({rule.endpoint}) declares no @operation")
        path = _ARGUMENT.sub(r"{\1}", rule.rule.removeprefix(API_PREFIX))
        for method in sorted((rule.methods or set()) - _IGNORED_METHODS):
            paths.setdefault(path, {})[method.lower()] = _operation(declared, rule.arguments)
    return paths


def _operation(declared: Operation, arguments: set[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"summary": declared.summary}
    if declared.description:
        out["description"] = declared.description
    parameters = [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                  for name in sorted(arguments)]
    parameters += [{"name": name, "in": "header", "schema": {"type": "string"},
                    "description": text} for name, text in declared.headers.items()]
    parameters += [{"name": name, "in": "query", "schema": schema}
                   for name, schema in declared.query.items()]
    if parameters:
        out["parameters"] = parameters
    if declared.body is not None:  # inline, as clients read it; nested models are refs
        out["requestBody"] = {"required": True, "content": {
            "application/json": {"schema": _components()[_ref_name(declared.body)]}}}
    if declared.form is not None:
        out["requestBody"] = {"required": True,
                              "content": {"multipart/form-data": {"schema": declared.form}}}
    out["responses"] = {str(status): _answer(answer, text)
                        for status, (answer, text) in declared.responses.items()}
    if declared.public:
        out["security"] = []
    else:
        out["responses"].setdefault("401", _answer(models.ApiErrorBody,
                                                   "missing, invalid or expired token"))
    return out


def _ref_name(model: type[BaseModel]) -> str:
    if model not in COMPONENTS:
        raise UndocumentedRoute(f"{model.__name__} is not among the document's components")
    return model.__name__


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF.format(model=_ref_name(model))}


def _answer(answer: Answer, text: str) -> dict[str, Any]:
    if isinstance(answer, str):  # a media type with a binary or text body
        kind = {"type": "string"} if answer.startswith("text/") else \
            {"type": "string", "format": "binary"}
        return {"description": text, "content": {answer: {"schema": kind}}}
    schema = answer if isinstance(answer, dict) else _ref(answer)
    return {"description": text, "content": {"application/json": {"schema": schema}}}
