"""The history store on SQLAlchemy Core: SQLite by default, PostgreSQL with the same code.

The tables below only describe the schema to build queries from; the schema itself is
created and changed by the Alembic revisions in `migrations` (a test checks the two
agree, on both databases). Every write runs in its own transaction that is committed
before the method returns, because the rollout controller records a decision before
acting on it.

What differs between the two is kept to a few places: SQLite gets its pragmas and takes
its write lock up front; PostgreSQL, shared by many CI runners at once, gets the psycopg 3
driver, a connect timeout, an advisory lock around migrations and a row lock on the
deployment while a sequence number is drawn. Counters add with `INSERT ... ON CONFLICT
DO UPDATE` on both, which adds atomically, so concurrent runners lose no increment.
"""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic.util import CommandError
from sqlalchemy import (
    Boolean,
    Column,
    ColumnElement,
    Executable,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Row,
    ScalarSelect,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    create_engine,
    event,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    IntegrityError,
    NoSuchModuleError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.pool import ConnectionPoolEntry

from safeship.errors import (
    ConfigError,
    RolloutLockedError,
    StateConflictError,
    StoreError,
    StoreUnavailableError,
)
from safeship.store import migrations
from safeship.store.interface import (
    CounterIncrement,
    CounterRecord,
    DashboardVersionRecord,
    DecisionRecord,
    DeploymentRecord,
    LockHolder,
    SlotAssignment,
    SmokeTestRecord,
    Store,
    canonical_labels,
)
from safeship.store.locks import (
    AdvisoryMutex,
    FileMutex,
    Mutex,
    ThreadMutex,
    lock_file,
    this_process,
)

metadata = MetaData()

deployments = Table(
    "deployments",
    metadata,
    Column("id", String(), primary_key=True),
    Column("service", String(), nullable=False),
    Column("environment", String(), nullable=False),
    Column("version", String(), nullable=False),
    Column("commit_sha", String(), nullable=True),
    Column("commit_time", Float(), nullable=True),
    Column("commit_time_missing", String(), nullable=True),
    Column("started_at", Float(), nullable=False),
    Column("finished_at", Float(), nullable=True),
    Column("outcome", String(), nullable=True),
    Column("reason", String(), nullable=True),
    Column("max_weight", Integer(), nullable=False),
    Index("ix_deployments_service_environment_started_at", "service", "environment", "started_at"),
    Index("ix_deployments_started_at", "started_at"),
)

rollout_states = Table(
    "rollout_states",
    metadata,
    Column("id", Integer(), primary_key=True, autoincrement=True),
    Column(
        "deployment_id",
        String(),
        ForeignKey("deployments.id", name="fk_rollout_states_deployment_id"),
        nullable=False,
    ),
    Column("seq", Integer(), nullable=False),
    Column("at", Float(), nullable=False),
    Column("state", Text(), nullable=False),
    UniqueConstraint("deployment_id", "seq", name="uq_rollout_states_deployment_id_seq"),
)

decisions = Table(
    "decisions",
    metadata,
    Column("id", Integer(), primary_key=True, autoincrement=True),
    Column(
        "deployment_id",
        String(),
        ForeignKey("deployments.id", name="fk_decisions_deployment_id"),
        nullable=False,
    ),
    Column("seq", Integer(), nullable=False),
    Column("at", Float(), nullable=False),
    Column("action", String(), nullable=False),
    Column("step", Integer(), nullable=False),
    Column("weight", Integer(), nullable=False),
    Column("result", String(), nullable=False),
    Column("reason", String(), nullable=False),
    Column("inputs", Text(), nullable=False),
    UniqueConstraint("deployment_id", "seq", name="uq_decisions_deployment_id_seq"),
)

smoke_tests = Table(
    "smoke_tests",
    metadata,
    Column("id", Integer(), primary_key=True, autoincrement=True),
    Column(
        "deployment_id",
        String(),
        ForeignKey("deployments.id", name="fk_smoke_tests_deployment_id"),
        nullable=False,
    ),
    Column("service", String(), nullable=False),
    Column("environment", String(), nullable=False),
    Column("name", String(), nullable=False),
    Column("passed", Boolean(), nullable=False),
    Column("duration", Float(), nullable=False),
    Column("at", Float(), nullable=False),
    Column("detail", Text(), nullable=False),
    Index("ix_smoke_tests_at", "at"),
)

# One row per counter series; `labels` is `canonical_labels(...)` of the other labels.
counters = Table(
    "counters",
    metadata,
    Column("service", String(), nullable=False),
    Column("environment", String(), nullable=False),
    Column("name", String(), nullable=False),
    Column("labels", String(), nullable=False),
    Column("value", Float(), nullable=False),
    PrimaryKeyConstraint("service", "environment", "name", "labels", name="pk_counters"),
)
_COUNTER_KEY = ("service", "environment", "name", "labels")

# Grafana dashboard versions changed per deployment (`safeship dashboards`). No foreign
# key: `dashboards push` may run under a deployment id that has no rollout of its own.
dashboard_versions = Table(
    "dashboard_versions",
    metadata,
    Column("id", Integer(), primary_key=True, autoincrement=True),
    Column("deployment_id", String(), nullable=False),
    Column("uid", String(), nullable=False),
    Column("version_before", Integer(), nullable=True),
    Column("version_after", Integer(), nullable=False),
    Column("at", Float(), nullable=False),
    Column("action", String(), nullable=False),
    Index("ix_dashboard_versions_deployment_id", "deployment_id"),
)

# Which version each slot serves, one row per change (append-only, newest last).
slot_assignments = Table(
    "slot_assignments",
    metadata,
    Column("id", Integer(), primary_key=True, autoincrement=True),
    Column("service", String(), nullable=False),
    Column("environment", String(), nullable=False),
    Column("at", Float(), nullable=False),
    Column("deployment_id", String(), nullable=False),
    Column("change", String(), nullable=False),
    Column("stable_slot", String(), nullable=False),
    Column("stable_version", String(), nullable=True),
    Column("canary_slot", String(), nullable=False),
    Column("canary_version", String(), nullable=True),
    Index("ix_slot_assignments_service_environment", "service", "environment"),
)

# Who holds the one rollout of a service and environment (see safeship.store.locks).
rollout_locks = Table(
    "rollout_locks",
    metadata,
    Column("service", String(), nullable=False),
    Column("environment", String(), nullable=False),
    Column("deployment_id", String(), nullable=False),
    Column("holder", String(), nullable=False),
    Column("acquired_at", Float(), nullable=False),
    PrimaryKeyConstraint("service", "environment", name="pk_rollout_locks"),
)

# Columns named after the record fields, so rows map straight onto the dataclasses.
_DEPLOYMENT_COLUMNS = [deployments.c[f.name] for f in fields(DeploymentRecord)]
_DECISION_COLUMNS = [decisions.c[f.name] for f in fields(DecisionRecord)]
_SMOKE_TEST_COLUMNS = [smoke_tests.c[f.name] for f in fields(SmokeTestRecord)]
_DASHBOARD_VERSION_COLUMNS = [dashboard_versions.c[f.name] for f in fields(DashboardVersionRecord)]
_SLOT_COLUMNS = [slot_assignments.c[f.name] for f in fields(SlotAssignment)]

_SQLITE_BUSY_TIMEOUT_S = 5.0
# Without it an unreachable PostgreSQL host (packets dropped) hangs for the TCP timeout.
_POSTGRESQL_CONNECT_TIMEOUT_S = 10
# Any fixed number shared by every safeship: the advisory lock migrations run under.
_MIGRATION_LOCK_KEY = 0x5AFE_5419

# For strings SQLAlchemy cannot parse: everything between the user's ":" and the last "@".
_PASSWORD_IN_AUTHORITY = re.compile(r"^((?:[^:/@]*://)?[^:/@]*:).*@")
_PASSWORD_IN_QUERY = re.compile(r"([?&](?:password|passwd|pwd)=)[^&#]*", re.IGNORECASE)

_DB_ERRORS = (SQLAlchemyError, CommandError, migrations.SchemaTooNewError, OSError)


def redact_url(url: str) -> str:
    """`url` with any password replaced by ***, fit for messages and logs.

    Works on strings SQLAlchemy cannot parse too, since those end up in error messages.
    """
    try:
        text = make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        text = _PASSWORD_IN_AUTHORITY.sub(r"\1***@", url)
    return _PASSWORD_IN_QUERY.sub(r"\1***", text)


class SqlStore(Store):
    """`Store` on any SQLAlchemy URL; `open_store` is the way in, as it also migrates.

    `url` is the URL with its password masked: the only form of it that may be shown.
    """

    def __init__(self, url: str) -> None:
        self.url = redact_url(url)
        parsed = self._parse(url)
        self._password = parsed.password or None
        self._sqlite = parsed.get_backend_name() == "sqlite"
        self._postgresql = parsed.get_backend_name() == "postgresql"
        connect_args: dict[str, Any] = {}
        if self._sqlite:
            parsed = self._prepare_sqlite_file(parsed)
            self.url = parsed.render_as_string(hide_password=True)
        if self._postgresql:
            # SQLAlchemy's default PostgreSQL driver is psycopg2; safeship ships psycopg 3.
            if parsed.drivername == "postgresql":
                parsed = parsed.set(drivername="postgresql+psycopg")
            if "connect_timeout" not in parsed.query:
                connect_args["connect_timeout"] = _POSTGRESQL_CONNECT_TIMEOUT_S
        with self._guard("opening"):
            try:
                # pool_pre_ping: a rollout holds the store through long pauses, during
                # which a database server may drop idle connections.
                self._engine = create_engine(parsed, pool_pre_ping=True, connect_args=connect_args)
            except NoSuchModuleError as exc:
                raise ConfigError(
                    f"history store {self.url}: unknown database type or driver "
                    f"{parsed.drivername!r}"
                ) from exc
            except ImportError as exc:
                raise ConfigError(
                    f"history store {self.url}: the database driver is not installed ({exc}); "
                    "install it, or name an installed one in the URL as dialect+driver://"
                ) from exc
        if self._sqlite:
            event.listen(self._engine, "connect", _sqlite_pragmas)

    def _parse(self, url: str) -> URL:
        try:
            return make_url(url)
        except (ArgumentError, ValueError):
            # from None: SQLAlchemy's message quotes the URL, password included.
            raise ConfigError(
                f"history store {self.url}: not a database URL "
                "(expected e.g. sqlite:///.safeship/history.db)"
            ) from None

    def _prepare_sqlite_file(self, url: URL) -> URL:
        """Anchor a relative path at the current directory and create its parent directory."""
        if url.database in (None, "", ":memory:") or url.query.get("uri"):
            return url
        path = Path(url.database).absolute()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"history store {self.url}: cannot create directory {path.parent}: {exc}"
            ) from exc
        return url.set(database=str(path))

    def _error(self, what: str, exc: BaseException) -> StoreError:
        detail = str(exc.orig) if isinstance(exc, DBAPIError) else str(exc)
        if self._password:
            detail = detail.replace(self._password, "***")
        return StoreError(f"history store {self.url}: {what} failed: {detail}")

    @contextmanager
    def _guard(self, what: str, *, connecting: bool = False) -> Iterator[None]:
        """Database errors as StoreError; when `connecting`, an unreachable database is
        StoreUnavailableError (exit 3: nothing changed yet)."""
        try:
            yield
        except _DB_ERRORS as exc:
            error: StoreError | StoreUnavailableError = self._error(what, exc)
            if connecting and isinstance(exc, OperationalError):
                error = StoreUnavailableError(str(error))
            # A chained exception prints its own message, which may quote the password.
            leaks = self._password is not None and self._password in str(exc)
            raise error from (None if leaks else exc)

    def _rows(self, what: str, query: Executable) -> Sequence[Row[Any]]:
        with self._guard(what), self._engine.connect() as conn:
            return conn.execute(query).all()

    def migrate(self) -> None:
        """Bring the schema to the newest revision; a no-op when it is there already."""
        with self._guard("migrating the schema", connecting=True), self._engine.connect() as conn:
            if not migrations.pending(conn):
                return
            conn.rollback()  # ends the read pending() began; the migration gets a fresh one
            # Both take a lock for the whole migration, so a second process opening a new
            # database at the same moment waits, then finds it migrated.
            if self._sqlite:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            if self._postgresql:
                conn.execute(select(func.pg_advisory_xact_lock(_MIGRATION_LOCK_KEY)))
            migrations.upgrade_to_head(conn)
            conn.commit()

    def create_deployment(self, record: DeploymentRecord) -> None:
        with self._guard(f"creating deployment {record.id!r}"):
            try:
                with self._engine.begin() as conn:
                    conn.execute(insert(deployments).values(asdict(record)))
            except IntegrityError:
                if self.get_deployment(record.id) is None:
                    raise
                raise StoreError(
                    f"history store {self.url}: deployment {record.id!r} already exists "
                    "(continue it with `safeship rollout resume`, or pick another "
                    "--deployment-id)"
                ) from None

    def update_deployment(
        self,
        deployment_id: str,
        *,
        outcome: str | None = None,
        reason: str | None = None,
        finished_at: float | None = None,
        max_weight: int | None = None,
    ) -> DeploymentRecord:
        given = {
            "outcome": outcome,
            "reason": reason,
            "finished_at": finished_at,
            "max_weight": max_weight,
        }
        changes = {name: value for name, value in given.items() if value is not None}
        where = deployments.c.id == deployment_id
        with self._guard(f"updating deployment {deployment_id!r}"), self._engine.begin() as conn:
            if changes:
                conn.execute(update(deployments).where(where).values(changes))
            row = conn.execute(select(*_DEPLOYMENT_COLUMNS).where(where)).one_or_none()
        if row is None:
            raise StoreError(f"history store {self.url}: no deployment {deployment_id!r}")
        return DeploymentRecord(**row._mapping)

    def get_deployment(self, deployment_id: str) -> DeploymentRecord | None:
        query = select(*_DEPLOYMENT_COLUMNS).where(deployments.c.id == deployment_id)
        rows = self._rows(f"reading deployment {deployment_id!r}", query)
        return DeploymentRecord(**rows[0]._mapping) if rows else None

    def unfinished_deployments(self, service: str, environment: str) -> list[DeploymentRecord]:
        query = (
            select(*_DEPLOYMENT_COLUMNS)
            .where(
                deployments.c.service == service,
                deployments.c.environment == environment,
                deployments.c.outcome.is_(None),
            )
            .order_by(deployments.c.started_at, deployments.c.id)
        )
        rows = self._rows(f"listing unfinished deployments of {service}/{environment}", query)
        return [DeploymentRecord(**row._mapping) for row in rows]

    @contextmanager
    def rollout_lock(
        self, service: str, environment: str, deployment_id: str, at: float
    ) -> Iterator[LockHolder | None]:
        key = f"{service}/{environment}"
        mutex = self._mutex(key)
        with self._guard(f"taking the rollout lock of {key}"):
            acquired = mutex.try_acquire()
        if not acquired:
            holder = self._lock_holder(service, environment)
            who = (
                f"rollout {holder.deployment_id} by {holder.holder} "
                f"since {_utc(holder.acquired_at)}"
                if holder is not None
                else "another process"
            )
            raise RolloutLockedError(
                f"{key} is being rolled out by {who}; one rollout per service and environment "
                "runs at a time: wait for it, or `safeship rollout abort "
                f"{holder.deployment_id if holder else 'ID'}` to stop it"
            )
        try:
            previous = self._lock_holder(service, environment)
            row = {"deployment_id": deployment_id, "holder": this_process(), "acquired_at": at}
            with self._guard(f"recording the rollout lock of {key}"), self._engine.begin() as conn:
                conn.execute(
                    rollout_locks.delete().where(
                        rollout_locks.c.service == service,
                        rollout_locks.c.environment == environment,
                    )
                )
                conn.execute(
                    insert(rollout_locks).values(service=service, environment=environment, **row)
                )
            # Every ending, an exception too, leaves no holder row: only a process that
            # died holding the lock does, so "took over" always means that.
            try:
                yield previous
            except BaseException:
                # Already ending on an error: that one is reported; a row left behind
                # only makes the next holder say it took over.
                with contextlib.suppress(StoreError):
                    self._release_lock_row(service, environment, deployment_id)
                raise
            self._release_lock_row(service, environment, deployment_id)
        finally:
            mutex.release()

    def _release_lock_row(self, service: str, environment: str, deployment_id: str) -> None:
        key = f"{service}/{environment}"
        with self._guard(f"releasing the rollout lock of {key}"), self._engine.begin() as conn:
            conn.execute(
                rollout_locks.delete().where(
                    rollout_locks.c.service == service,
                    rollout_locks.c.environment == environment,
                    rollout_locks.c.deployment_id == deployment_id,
                )
            )

    def _mutex(self, key: str) -> Mutex:
        if self._postgresql:
            return AdvisoryMutex(self._engine, key)
        database = self._engine.url.database
        if self._sqlite and database not in (None, "", ":memory:"):
            return FileMutex(lock_file(Path(database), key))
        return ThreadMutex(f"{self.url} {key}")

    def _lock_holder(self, service: str, environment: str) -> LockHolder | None:
        query = select(
            rollout_locks.c.deployment_id, rollout_locks.c.holder, rollout_locks.c.acquired_at
        ).where(rollout_locks.c.service == service, rollout_locks.c.environment == environment)
        rows = self._rows(f"reading the rollout lock of {service}/{environment}", query)
        return LockHolder(**rows[0]._mapping) if rows else None

    def list_deployments(
        self,
        *,
        service: str | None = None,
        environment: str | None = None,
        since: float | None = None,
        limit: int | None = None,
    ) -> list[DeploymentRecord]:
        query = select(*_DEPLOYMENT_COLUMNS).order_by(
            deployments.c.started_at.desc(), deployments.c.id.desc()
        )
        if service is not None:
            query = query.where(deployments.c.service == service)
        if environment is not None:
            query = query.where(deployments.c.environment == environment)
        if since is not None:
            query = query.where(deployments.c.started_at >= since)
        if limit is not None:
            query = query.limit(limit)
        rows = self._rows("listing deployments", query)
        return [DeploymentRecord(**row._mapping) for row in rows]

    def save_state(
        self, deployment_id: str, at: float, state: dict[str, Any], *, after: int | None = None
    ) -> int:
        what = f"saving the state of deployment {deployment_id!r}"
        latest = (
            select(func.coalesce(func.max(rollout_states.c.seq), 0))
            .where(rollout_states.c.deployment_id == deployment_id)
            .scalar_subquery()
        )
        row = select(
            literal(deployment_id),
            _next_seq(rollout_states, deployment_id),
            literal(at, Float(precision=53)),
            literal(self._to_json(what, state), Text()),
        )
        if after is not None:
            # One statement: the check and the write cannot be split by another writer.
            row = row.where(latest == after)
        statement = (
            insert(rollout_states)
            .from_select(["deployment_id", "seq", "at", "state"], row)
            .returning(rollout_states.c.seq)
        )
        with self._guard(what), self._engine.begin() as conn:
            self._lock_sequence(conn, deployment_id)
            written = conn.execute(statement).scalar_one_or_none()
            if written is None:
                current = conn.execute(select(latest)).scalar_one()
                raise StateConflictError(
                    f"deployment {deployment_id!r} was changed by another process "
                    f"(state {current}, expected {after})"
                )
        seq: int = written
        return seq

    def latest_state(self, deployment_id: str) -> tuple[int, dict[str, Any]] | None:
        query = (
            select(rollout_states.c.seq, rollout_states.c.state)
            .where(rollout_states.c.deployment_id == deployment_id)
            .order_by(rollout_states.c.seq.desc())
            .limit(1)
        )
        rows = self._rows(f"loading the state of deployment {deployment_id!r}", query)
        return (rows[0].seq, _from_json(rows[0].state)) if rows else None

    def state_history(self, deployment_id: str) -> list[tuple[float, dict[str, Any]]]:
        query = (
            select(rollout_states.c.at, rollout_states.c.state)
            .where(rollout_states.c.deployment_id == deployment_id)
            .order_by(rollout_states.c.seq)
        )
        rows = self._rows(f"reading the state history of deployment {deployment_id!r}", query)
        return [(row.at, _from_json(row.state)) for row in rows]

    def add_decision(self, record: DecisionRecord) -> DecisionRecord:
        what = f"recording a decision of deployment {record.deployment_id!r}"
        values = {
            **asdict(record),
            "seq": _next_seq(decisions, record.deployment_id),
            "inputs": self._to_json(what, record.inputs),
        }
        with self._guard(what), self._engine.begin() as conn:
            self._lock_sequence(conn, record.deployment_id)
            result = conn.execute(insert(decisions).values(values))
            key = result.inserted_primary_key
            assert key is not None  # a single-row INSERT always reports its key
            seq: int = conn.execute(
                select(decisions.c.seq).where(decisions.c.id == key.id)
            ).scalar_one()
        return replace(record, seq=seq)

    def decisions(self, deployment_id: str) -> list[DecisionRecord]:
        query = (
            select(*_DECISION_COLUMNS)
            .where(decisions.c.deployment_id == deployment_id)
            .order_by(decisions.c.seq)
        )
        rows = self._rows(f"reading the decisions of deployment {deployment_id!r}", query)
        return [
            DecisionRecord(**{**row._mapping, "inputs": _from_json(row.inputs)}) for row in rows
        ]

    def add_smoke_test(self, record: SmokeTestRecord) -> None:
        what = f"recording smoke test {record.name!r} of deployment {record.deployment_id!r}"
        with self._guard(what), self._engine.begin() as conn:
            conn.execute(insert(smoke_tests).values(asdict(record)))

    def smoke_tests(
        self,
        *,
        deployment_id: str | None = None,
        service: str | None = None,
        environment: str | None = None,
    ) -> list[SmokeTestRecord]:
        query = select(*_SMOKE_TEST_COLUMNS).order_by(smoke_tests.c.at, smoke_tests.c.id)
        if deployment_id is not None:
            query = query.where(smoke_tests.c.deployment_id == deployment_id)
        if service is not None:
            query = query.where(smoke_tests.c.service == service)
        if environment is not None:
            query = query.where(smoke_tests.c.environment == environment)
        rows = self._rows("listing smoke tests", query)
        return [SmokeTestRecord(**row._mapping) for row in rows]

    def add_to_counters(self, increments: Sequence[CounterIncrement]) -> None:
        # Summed per series first: one upsert may not touch the same row twice (PostgreSQL).
        totals: dict[tuple[str, str, str, str], float] = {}
        for increment in increments:
            key = (
                increment.service,
                increment.environment,
                increment.name,
                canonical_labels(increment.labels),
            )
            totals[key] = totals.get(key, 0.0) + increment.value
        if not totals:
            return
        # In key order, so that two runners updating the same series lock their rows in
        # the same order and cannot deadlock (PostgreSQL).
        rows = [
            dict(zip(_COUNTER_KEY, key, strict=True), value=v) for key, v in sorted(totals.items())
        ]
        with self._guard("adding to counters"), self._engine.begin() as conn:
            _add_to_counters(conn, rows)

    def counters(self, *, service: str | None = None) -> list[CounterRecord]:
        query = select(
            counters.c.service,
            counters.c.environment,
            counters.c.name,
            counters.c.labels,
            counters.c.value,
        ).order_by(*(counters.c[name] for name in _COUNTER_KEY))
        if service is not None:
            query = query.where(counters.c.service == service)
        rows = self._rows("reading counters", query)
        return [
            CounterRecord(
                service=row.service,
                environment=row.environment,
                name=row.name,
                labels=json.loads(row.labels),
                value=row.value,
            )
            for row in rows
        ]

    def add_dashboard_version(self, record: DashboardVersionRecord) -> None:
        what = f"recording dashboard {record.uid!r} of deployment {record.deployment_id!r}"
        with self._guard(what), self._engine.begin() as conn:
            conn.execute(insert(dashboard_versions).values(asdict(record)))

    def dashboard_versions(self, deployment_id: str) -> list[DashboardVersionRecord]:
        query = (
            select(*_DASHBOARD_VERSION_COLUMNS)
            .where(dashboard_versions.c.deployment_id == deployment_id)
            .order_by(dashboard_versions.c.at, dashboard_versions.c.id)
        )
        rows = self._rows(f"reading the dashboard versions of deployment {deployment_id!r}", query)
        return [DashboardVersionRecord(**row._mapping) for row in rows]

    def record_slots(self, record: SlotAssignment) -> None:
        what = f"recording the slots of {record.service}/{record.environment}"
        with self._guard(what), self._engine.begin() as conn:
            conn.execute(insert(slot_assignments).values(asdict(record)))

    def slot_history(
        self, service: str, environment: str, *, limit: int | None = None
    ) -> list[SlotAssignment]:
        query = (
            select(*_SLOT_COLUMNS)
            .where(
                slot_assignments.c.service == service,
                slot_assignments.c.environment == environment,
            )
            .order_by(slot_assignments.c.id.desc())
            .limit(limit)
        )
        rows = self._rows(f"reading the slots of {service}/{environment}", query)
        return [SlotAssignment(**row._mapping) for row in rows]

    def close(self) -> None:
        self._engine.dispose()

    def _lock_sequence(self, conn: Connection, deployment_id: str) -> None:
        """On PostgreSQL, hold the deployment's row until commit before drawing a `seq`.

        Under PostgreSQL's READ COMMITTED two runners writing for one deployment (the
        controller, and `safeship rollout promote` elsewhere) could both read the same
        max(seq) and one would fail on the unique constraint; the lock makes the second
        wait and then see the first's row. SQLite needs none: its writers take turns.
        """
        if self._postgresql:
            # NO KEY UPDATE: excludes other seq draws, not the foreign-key checks of inserts.
            row = select(deployments.c.id).where(deployments.c.id == deployment_id)
            conn.execute(row.with_for_update(key_share=True))

    def _to_json(self, what: str, payload: dict[str, Any]) -> str:
        try:
            return json.dumps(payload)
        except (TypeError, ValueError) as exc:
            raise StoreError(
                f"history store {self.url}: {what} failed: payload is not JSON ({exc})"
            ) from exc


def _utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _next_seq(table: Table, deployment_id: str) -> ScalarSelect[Any]:
    """The next sequence number, computed inside the INSERT itself.

    One statement rather than read-then-write: on SQLite a transaction that reads first
    and writes later fails at once, busy timeout or not, if another process wrote between.
    """
    return (
        select(func.coalesce(func.max(table.c.seq), 0) + 1)
        .where(table.c.deployment_id == deployment_id)
        .scalar_subquery()
    )


def counter_upsert(dialect: str) -> Executable | None:
    """`INSERT ... ON CONFLICT DO UPDATE value = value + new`, or None where unsupported."""
    if dialect == "sqlite":
        lite = sqlite.insert(counters)
        return lite.on_conflict_do_update(
            index_elements=_COUNTER_KEY, set_={"value": counters.c.value + lite.excluded.value}
        )
    if dialect == "postgresql":
        pg = postgresql.insert(counters)
        return pg.on_conflict_do_update(
            index_elements=_COUNTER_KEY, set_={"value": counters.c.value + pg.excluded.value}
        )
    return None


def _add_to_counters(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Add `rows` (one per series) to the counters inside the caller's transaction."""
    upsert = counter_upsert(conn.dialect.name)
    if upsert is not None:
        conn.execute(upsert, rows)
        return
    # Other databases: update, and insert the series that did not exist yet.
    for row in rows:
        same: ColumnElement[bool] = and_(*(counters.c[name] == row[name] for name in _COUNTER_KEY))
        changed = conn.execute(
            update(counters).where(same).values(value=counters.c.value + row["value"])
        )
        if changed.rowcount == 0:
            conn.execute(insert(counters).values(row))


def _from_json(text: str) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads(text)
    return payload


def _sqlite_pragmas(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
    cursor = dbapi_connection.cursor()
    try:
        # First, so that everything after it waits for locks instead of failing.
        cursor.execute(f"PRAGMA busy_timeout = {int(_SQLITE_BUSY_TIMEOUT_S * 1000)}")
        # WAL: readers (safeship history) never block the rollout's writes.
        _while_locked(lambda: cursor.execute("PRAGMA journal_mode = WAL"))
        cursor.execute("PRAGMA synchronous = FULL")  # a committed decision survives a power cut
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _while_locked(statement: Callable[[], object]) -> None:
    """Run `statement`, retrying while the database is locked, up to the busy timeout.

    Needed for the switch to WAL: when several processes create the file at once, SQLite
    reports the switch as locked straight away instead of waiting out busy_timeout.
    """
    deadline = time.monotonic() + _SQLITE_BUSY_TIMEOUT_S
    while True:
        try:
            statement()
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)
