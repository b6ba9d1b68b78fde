"""The OpenAPI document is complete enough to generate a client from and to learn the API by:
every operation has a typed success response, typed bodies, documented errors in the one error
shape, and an example for every input."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import Api, app_routes

PUBLIC = {("GET", "/health"), ("GET", "/api/register")}
DOCS = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
HOME = "/"  # redirects people to the console


@pytest.fixture(scope="module")
def spec(api: Api) -> dict[str, Any]:
    response = api.get(None, "/openapi.json")
    assert response.status_code == 200
    return response.json()


def _operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method.upper(), path, op) for path, ops in spec["paths"].items() for method, op in ops.items()]


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].removeprefix("#/components/schemas/")
        schema = spec["components"]["schemas"][name]
    return schema


def _has_example(item: dict[str, Any]) -> bool:
    return any(key in item for key in ("example", "examples"))


def test_document_basics(spec: dict[str, Any]) -> None:
    assert spec["openapi"].startswith("3.")
    assert spec["info"]["title"] and spec["info"]["version"] and "Bearer" in spec["info"]["description"]
    scheme = spec["components"]["securitySchemes"]["HTTPBearer"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer") and scheme["description"]


def test_every_route_is_documented(api: Api, spec: dict[str, Any]) -> None:
    documented = {(method, path) for method, path, _ in _operations(spec)}
    assert documented == app_routes(api.app, documented=True)
    hidden = app_routes(api.app, documented=False)
    others = {path for _, path in hidden if path not in DOCS and path not in (HOME, "/register")
              and not path.startswith("/console")}
    assert others == set(), "only the API docs and the console's HTML pages may stay out of the document"


def test_every_operation_has_a_typed_success_response(spec: dict[str, Any]) -> None:
    for method, path, op in _operations(spec):
        success = {code: r for code, r in op["responses"].items() if code.startswith("2")}
        assert len(success) == 1, f"{method} {path}: one success response, got {sorted(success)}"
        (response,) = success.values()
        assert response.get("content"), f"{method} {path}: the success response has no content"
        for media, content in response["content"].items():
            schema = content.get("schema")
            assert schema, f"{method} {path}: {media} has no schema"
            if media != "application/json":
                continue
            if schema.get("type") == "array":
                schema = schema["items"]
            schema = _resolve(spec, schema)
            assert schema.get("properties"), f"{method} {path}: the response is not a model ({schema})"


def test_every_request_body_is_a_model_with_examples(spec: dict[str, Any]) -> None:
    bodies = 0
    for method, path, op in _operations(spec):
        if "requestBody" not in op:
            assert method == "GET" or path.endswith("/cancel"), f"{method} {path} takes no body"
            continue
        bodies += 1
        schema = op["requestBody"]["content"]["application/json"]["schema"]
        assert "$ref" in schema, f"{method} {path}: the body is not a named model"
        model = _resolve(spec, schema)
        assert model.get("additionalProperties") is False, f"{method} {path}: unknown fields must be refused"
        for name, field in model["properties"].items():
            assert _has_example(field), f"{method} {path}: body field {name!r} has no example"
    assert bodies >= 9


def test_every_parameter_has_an_example(spec: dict[str, Any]) -> None:
    for method, path, op in _operations(spec):
        for parameter in op.get("parameters", []):
            where = f"{method} {path}: {parameter['in']} parameter {parameter['name']!r}"
            assert _has_example(parameter) or _has_example(parameter["schema"]), f"{where} has no example"


def test_errors_are_documented_in_the_one_error_shape(spec: dict[str, Any]) -> None:
    assert "HTTPValidationError" not in spec["components"]["schemas"], "422s are ErrorBody, not FastAPI's default"
    for method, path, op in _operations(spec):
        for code, response in op["responses"].items():
            if code.startswith(("4", "5")):
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorBody"}, f"{method} {path} {code}"
        if (method, path) not in PUBLIC:
            assert op.get("security") == [{"HTTPBearer": []}], f"{method} {path} does not say it needs a token"
            assert "401" in op["responses"], f"{method} {path} does not document 401"
        if op.get("parameters") or op.get("requestBody"):
            assert "422" in op["responses"], f"{method} {path} does not document 422"


def test_every_operation_has_a_summary_and_a_tag(spec: dict[str, Any]) -> None:
    for method, path, op in _operations(spec):
        assert op.get("summary") and op.get("tags"), f"{method} {path}"


def test_documented_422_matches_what_the_server_sends(api: Api, spec: dict[str, Any]) -> None:
    response = api.post("developer", "/jobs", json={"sql": "SELECT COUNT(*) FROM residents", "epsilon": -1})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_request" and error["problems"]
    assert "epsilon" in error["message"] and "agreement_id" in {p["field"] for p in error["problems"]}
    detail = _resolve(spec, spec["components"]["schemas"]["ErrorBody"]["properties"]["error"])
    assert set(detail["required"]) <= error.keys()
