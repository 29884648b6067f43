"""Serve the registry: `python -m processor.local.registry --port P --postgres-url URL`."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import uvicorn
from sqlalchemy.exc import OperationalError

from processor.local.ports import HOST
from processor.local.registry.app import create_app
from processor.local.registry.store import SchemaStore


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m processor.local.registry",
        description="Confluent-compatible Avro schema registry of the local stack.",
    )
    parser.add_argument("--port", type=int, required=True, help="port on 127.0.0.1")
    parser.add_argument("--postgres-url", required=True, help="where schemas are kept")
    args = parser.parse_args(argv)
    try:
        store = SchemaStore.connect(args.postgres_url)
    except OperationalError as error:
        raise SystemExit(
            f"registry: cannot reach PostgreSQL at {args.postgres_url}: {error}"
        ) from error
    uvicorn.run(create_app(store), host=HOST, port=args.port, access_log=False)


if __name__ == "__main__":
    main()
