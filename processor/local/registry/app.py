"""The registry's HTTP interface: Confluent's REST paths, status codes and error codes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import QueryParams
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from processor.local.registry.store import RegistryError, SchemaStore, invalid_schema


class RegistryResponse(JSONResponse):
    media_type = "application/vnd.schemaregistry.v1+json"


def create_app(store: SchemaStore) -> Starlette:
    app = Starlette(
        routes=[
            Route("/subjects", _subjects, methods=["GET"]),
            Route("/subjects/{subject}", _lookup, methods=["POST"]),
            Route("/subjects/{subject}", _delete_subject, methods=["DELETE"]),
            Route("/subjects/{subject}/versions", _versions, methods=["GET"]),
            Route("/subjects/{subject}/versions", _register, methods=["POST"]),
            Route("/subjects/{subject}/versions/{version}", _version, methods=["GET"]),
            Route("/schemas/ids/{schema_id:int}", _schema, methods=["GET"]),
            Route("/config", _get_config, methods=["GET"]),
            Route("/config", _put_config, methods=["PUT"]),
            Route("/config/{subject}", _get_config, methods=["GET"]),
            Route("/config/{subject}", _put_config, methods=["PUT"]),
        ],
        exception_handlers={
            RegistryError: _registry_error,
            HTTPException: _http_error,
            Exception: _server_error,
        },
    )
    app.state.store = store
    return app


async def _subjects(request: Request) -> RegistryResponse:
    query = request.query_params
    subjects = await _run(
        request,
        SchemaStore.subjects,
        query.get("subject", ""),
        _flag(query, "deleted"),
        _flag(query, "deleted_only"),
    )
    return RegistryResponse(_page(subjects, query))


async def _versions(request: Request) -> RegistryResponse:
    query = request.query_params
    versions = await _run(
        request,
        SchemaStore.versions,
        request.path_params["subject"],
        _flag(query, "deleted"),
        _flag(query, "deleted_only"),
    )
    return RegistryResponse(_page(versions, query))


async def _register(request: Request) -> RegistryResponse:
    schema_text = await _schema_text(request)
    registered = await _run(
        request, SchemaStore.register, request.path_params["subject"], schema_text
    )
    return RegistryResponse(registered)


async def _lookup(request: Request) -> RegistryResponse:
    schema_text = await _schema_text(request)
    found = await _run(
        request,
        SchemaStore.lookup,
        request.path_params["subject"],
        schema_text,
        _flag(request.query_params, "deleted"),
    )
    return RegistryResponse(found)


async def _version(request: Request) -> RegistryResponse:
    found = await _run(
        request,
        SchemaStore.version,
        request.path_params["subject"],
        _version_number(request.path_params["version"]),
        _flag(request.query_params, "deleted"),
    )
    return RegistryResponse(found)


async def _delete_subject(request: Request) -> RegistryResponse:
    deleted = await _run(
        request,
        SchemaStore.delete_subject,
        request.path_params["subject"],
        _flag(request.query_params, "permanent"),
    )
    return RegistryResponse(deleted)


async def _schema(request: Request) -> RegistryResponse:
    return RegistryResponse(
        await _run(request, SchemaStore.schema, request.path_params["schema_id"])
    )


async def _get_config(request: Request) -> RegistryResponse:
    level = await _run(
        request,
        SchemaStore.compatibility,
        request.path_params.get("subject"),
        _flag(request.query_params, "defaultToGlobal"),
    )
    return RegistryResponse({"compatibilityLevel": level})


async def _put_config(request: Request) -> RegistryResponse:
    body = await _json_body(request)
    level = await _run(
        request,
        SchemaStore.set_compatibility,
        request.path_params.get("subject"),
        body.get("compatibility"),
    )
    return RegistryResponse({"compatibility": level})


async def _run(request: Request, operation: Callable[..., Any], *args: Any) -> Any:
    """Run a blocking store operation off the event loop."""
    return await run_in_threadpool(operation, request.app.state.store, *args)


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError as error:
        raise RegistryError(400, 400, f"Malformed JSON body: {error}") from error
    if not isinstance(body, dict):
        raise RegistryError(400, 400, "The body must be a JSON object")
    return body


async def _schema_text(request: Request) -> str:
    """The Avro schema of a register or lookup request; other kinds are refused."""
    body = await _json_body(request)
    if body.get("schemaType", "AVRO") != "AVRO":
        raise invalid_schema("Invalid schema: the local registry supports only AVRO schemas")
    if body.get("references"):
        raise invalid_schema("Invalid schema: the local registry does not support references")
    schema_text = body.get("schema")
    if not isinstance(schema_text, str):
        raise invalid_schema("Invalid schema: the body needs a 'schema' string")
    return schema_text


def _version_number(raw: str) -> int | None:
    """A version path segment: a positive int, or None for 'latest' (also spelled -1)."""
    if raw in ("latest", "-1"):
        return None
    if raw.isdigit() and 0 < int(raw) < 2**31:
        return int(raw)
    raise RegistryError(
        422,
        42202,
        f"The specified version '{raw}' is not a valid version id. Allowed values are "
        'between [1, 2^31-1] and the string "latest"',
    )


def _flag(query: QueryParams, name: str) -> bool:
    """A boolean query parameter; the client sends both `true` and Python's `True`."""
    return query.get(name, "false").lower() == "true"


def _page(items: list[Any], query: QueryParams) -> list[Any]:
    """Apply the `offset` and `limit` parameters (a negative limit means no limit)."""
    offset = max(int(query.get("offset", 0)), 0)
    limit = int(query.get("limit", -1))
    return items[offset : offset + limit] if limit >= 0 else items[offset:]


async def _registry_error(request: Request, error: Exception) -> RegistryResponse:
    assert isinstance(error, RegistryError)
    return RegistryResponse(
        {"error_code": error.error_code, "message": error.message}, status_code=error.status
    )


async def _http_error(request: Request, error: Exception) -> RegistryResponse:
    assert isinstance(error, HTTPException)
    return RegistryResponse(
        {"error_code": error.status_code, "message": error.detail}, status_code=error.status_code
    )


async def _server_error(request: Request, error: Exception) -> RegistryResponse:
    return RegistryResponse(
        {"error_code": 50001, "message": f"Error in the backend data store: {error}"},
        status_code=500,
    )
