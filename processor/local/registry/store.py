"""Subjects, versions, schemas and compatibility levels, kept in PostgreSQL.

Semantics follow Confluent's registry: a schema's id is global (the same schema text
under any subject has one id), registering a schema a subject already has returns the
existing version, soft-deleted versions are hidden unless asked for, and a subject must
be soft-deleted before it can be deleted permanently.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    ColumnElement,
    Connection,
    Engine,
    ForeignKey,
    Integer,
    MetaData,
    Row,
    Select,
    String,
    Table,
    Text,
    Uuid,
    create_engine,
    delete,
    false,
    func,
    insert,
    select,
    text,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert

from processor.local.registry.schema_text import AvroSchemaText, InvalidSchema, parse_avro

DB_SCHEMA = "schema_registry"
COMPATIBILITY_LEVELS = frozenset(
    {
        "BACKWARD",
        "BACKWARD_TRANSITIVE",
        "FORWARD",
        "FORWARD_TRANSITIVE",
        "FULL",
        "FULL_TRANSITIVE",
        "NONE",
    }
)
DEFAULT_COMPATIBILITY = "BACKWARD"
_GLOBAL = ""  # the compatibility row of the registry as a whole
_REGISTER_LOCK = 0x5C4E_3A11  # serialises registrations (advisory lock key)

metadata = MetaData(schema=DB_SCHEMA)
schemas = Table(
    "schemas",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("guid", Uuid, nullable=False, unique=True),
    # sha256 of the canonical text: schema texts can exceed a btree entry's size limit.
    Column("fingerprint", String(64), nullable=False, unique=True),
    Column("schema_text", Text, nullable=False),
)
subject_versions = Table(
    "subject_versions",
    metadata,
    Column("subject", Text, primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("schema_id", ForeignKey(schemas.c.id), nullable=False),
    Column("deleted", Boolean, nullable=False, server_default=false()),
)
compatibility = Table(
    "compatibility",
    metadata,
    Column("subject", Text, primary_key=True),
    Column("level", Text, nullable=False),
)


class RegistryError(Exception):
    """A failed request, with Confluent's HTTP status and error code."""

    def __init__(self, status: int, error_code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.message = message


def subject_not_found(subject: str) -> RegistryError:
    return RegistryError(404, 40401, f"Subject '{subject}' not found.")


def version_not_found(version: int | None) -> RegistryError:
    return RegistryError(404, 40402, f"Version {version or 'latest'} not found.")


def schema_not_found(detail: str = "Schema not found") -> RegistryError:
    return RegistryError(404, 40403, detail)


def invalid_schema(message: str) -> RegistryError:
    return RegistryError(422, 42201, message)


class SchemaStore:
    """The registry's data, one transaction per operation."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @classmethod
    def connect(cls, postgres_url: str) -> SchemaStore:
        """A store on `postgres_url` (a `postgresql://` URL), tables created if missing."""
        scheme, rest = postgres_url.split("://", 1)
        url = f"postgresql+psycopg://{rest}" if "+" not in scheme else postgres_url
        store = cls(create_engine(url, pool_pre_ping=True))
        with store._engine.begin() as connection:
            connection.execute(text(f"CREATE SCHEMA IF NOT EXISTS {DB_SCHEMA}"))
            metadata.create_all(connection)
        return store

    def register(self, subject: str, schema_text: str) -> dict[str, Any]:
        """Add the schema to the subject unless it is there already; its registration."""
        schema = _parse(schema_text)
        of_subject = subject_versions.c.subject == subject
        with self._engine.begin() as connection:
            connection.execute(select(func.pg_advisory_xact_lock(_REGISTER_LOCK)))
            schema_id = _schema_id(connection, schema)
            registered = connection.execute(
                _registrations().where(
                    of_subject,
                    subject_versions.c.schema_id == schema_id,
                    subject_versions.c.deleted.is_(False),
                )
            ).first()
            if registered is None:
                version = connection.execute(
                    select(func.coalesce(func.max(subject_versions.c.version), 0) + 1).where(
                        of_subject
                    )
                ).scalar_one()
                connection.execute(
                    insert(subject_versions).values(
                        subject=subject, version=version, schema_id=schema_id
                    )
                )
                registered = connection.execute(
                    _registrations().where(of_subject, subject_versions.c.version == version)
                ).one()
        return _registration(registered)

    def lookup(self, subject: str, schema_text: str, include_deleted: bool) -> dict[str, Any]:
        """The subject's newest version holding this schema."""
        schema = _parse(schema_text)
        with self._engine.connect() as connection:
            found = connection.execute(
                _registrations()
                .where(
                    subject_versions.c.subject == subject,
                    schemas.c.fingerprint == schema.fingerprint,
                    _visible(include_deleted, deleted_only=False),
                )
                .order_by(subject_versions.c.version.desc())
                .limit(1)
            ).first()
            if found is None:
                _require_subject(connection, subject, include_deleted)
                raise schema_not_found()
        return _registration(found)

    def schema(self, schema_id: int) -> dict[str, Any]:
        """A schema by its global id."""
        with self._engine.connect() as connection:
            found = connection.execute(
                select(schemas.c.schema_text, schemas.c.guid).where(schemas.c.id == schema_id)
            ).first()
        if found is None:
            raise schema_not_found(f"Schema {schema_id} not found")
        return {"schema": found.schema_text, "guid": str(found.guid)}

    def subjects(self, prefix: str, include_deleted: bool, deleted_only: bool) -> list[str]:
        with self._engine.connect() as connection:
            return list(
                connection.execute(
                    select(subject_versions.c.subject)
                    .distinct()
                    .where(
                        subject_versions.c.subject.startswith(prefix, autoescape=True),
                        _visible(include_deleted, deleted_only),
                    )
                    .order_by(subject_versions.c.subject)
                ).scalars()
            )

    def versions(self, subject: str, include_deleted: bool, deleted_only: bool) -> list[int]:
        with self._engine.connect() as connection:
            versions = list(
                connection.execute(
                    select(subject_versions.c.version)
                    .where(
                        subject_versions.c.subject == subject,
                        _visible(include_deleted, deleted_only),
                    )
                    .order_by(subject_versions.c.version)
                ).scalars()
            )
        if not versions:
            raise subject_not_found(subject)
        return versions

    def version(self, subject: str, version: int | None, include_deleted: bool) -> dict[str, Any]:
        """One version of the subject; `None` means the latest."""
        query = _registrations().where(
            subject_versions.c.subject == subject, _visible(include_deleted, deleted_only=False)
        )
        if version is None:
            query = query.order_by(subject_versions.c.version.desc()).limit(1)
        else:
            query = query.where(subject_versions.c.version == version)
        with self._engine.connect() as connection:
            found = connection.execute(query).first()
            if found is None:
                _require_subject(connection, subject, include_deleted)
                raise version_not_found(version)
        return _registration(found)

    def delete_subject(self, subject: str, permanent: bool) -> list[int]:
        """Soft-delete the subject's versions, or purge a soft-deleted subject; which ones."""
        with self._engine.begin() as connection:
            rows = connection.execute(
                select(subject_versions.c.version, subject_versions.c.deleted)
                .where(subject_versions.c.subject == subject)
                .order_by(subject_versions.c.version)
            ).all()
            if not rows:
                raise subject_not_found(subject)
            live = [row.version for row in rows if not row.deleted]
            of_subject = subject_versions.c.subject == subject
            if permanent:
                if live:
                    raise RegistryError(
                        404,
                        40405,
                        f"Subject '{subject}' was not deleted first before being "
                        "permanently deleted",
                    )
                connection.execute(delete(subject_versions).where(of_subject))
                return [row.version for row in rows]
            if not live:
                raise RegistryError(
                    404,
                    40404,
                    f"Subject '{subject}' was soft deleted. Set permanent=true to delete "
                    "permanently",
                )
            connection.execute(update(subject_versions).where(of_subject).values(deleted=True))
            connection.execute(delete(compatibility).where(compatibility.c.subject == subject))
            return live

    def compatibility(self, subject: str | None, default_to_global: bool) -> str:
        """The subject's level, or the global one for `None` (or when asked to fall back)."""
        with self._engine.connect() as connection:
            if subject is not None:
                level = _level(connection, subject)
                if level is not None:
                    return level
                if not default_to_global:
                    raise RegistryError(
                        404,
                        40408,
                        f"Subject '{subject}' does not have subject-level compatibility configured",
                    )
            return _level(connection, _GLOBAL) or DEFAULT_COMPATIBILITY

    def set_compatibility(self, subject: str | None, level: object) -> str:
        if level not in COMPATIBILITY_LEVELS:
            raise RegistryError(
                422,
                42203,
                f"Invalid compatibility level {level!r}; one of {sorted(COMPATIBILITY_LEVELS)}",
            )
        statement = pg_insert(compatibility).values(subject=subject or _GLOBAL, level=level)
        with self._engine.begin() as connection:
            connection.execute(
                statement.on_conflict_do_update(
                    index_elements=[compatibility.c.subject], set_={"level": level}
                )
            )
        return str(level)


def _parse(schema_text: str) -> AvroSchemaText:
    try:
        return parse_avro(schema_text)
    except InvalidSchema as error:
        raise invalid_schema(str(error)) from error


def _schema_id(connection: Connection, schema: AvroSchemaText) -> int:
    """The schema's global id, assigned now if the registry has never seen it."""
    existing = connection.execute(
        select(schemas.c.id).where(schemas.c.fingerprint == schema.fingerprint)
    ).scalar()
    if existing is not None:
        return existing
    return connection.execute(
        insert(schemas)
        .values(guid=uuid.uuid4(), fingerprint=schema.fingerprint, schema_text=schema.text)
        .returning(schemas.c.id)
    ).scalar_one()


def _registrations() -> Select[Any]:
    return select(
        subject_versions.c.subject,
        subject_versions.c.version,
        schemas.c.id,
        schemas.c.guid,
        schemas.c.schema_text,
    ).join(schemas, schemas.c.id == subject_versions.c.schema_id)


def _registration(row: Row[Any]) -> dict[str, Any]:
    """Confluent's RegisteredSchema JSON (schemaType is omitted for Avro, as Confluent does)."""
    return {
        "subject": row.subject,
        "version": row.version,
        "id": row.id,
        "guid": str(row.guid),
        "schema": row.schema_text,
    }


def _visible(include_deleted: bool, deleted_only: bool) -> ColumnElement[bool]:
    if deleted_only:
        return subject_versions.c.deleted.is_(True)
    if include_deleted:
        return true()
    return subject_versions.c.deleted.is_(False)


def _require_subject(connection: Connection, subject: str, include_deleted: bool) -> None:
    exists = connection.execute(
        select(subject_versions.c.version)
        .where(subject_versions.c.subject == subject, _visible(include_deleted, deleted_only=False))
        .limit(1)
    ).first()
    if exists is None:
        raise subject_not_found(subject)


def _level(connection: Connection, subject: str) -> str | None:
    return connection.execute(
        select(compatibility.c.level).where(compatibility.c.subject == subject)
    ).scalar()
