"""The alarm record: every alarm the service raises, appended to a database.

One row per alarm: when, which request (its id and the input's position in it), a SHA-256 of
the input (of its float32 little-endian bytes, C order, after validation: a client can compute
the same), the OOD score, the conformal p-value and the predicted label.

Durability. The service commits a batch's alarms *before* it answers any request of that batch
(:mod:`trustlab.serve.batcher`), and a failed commit turns those answers into 503s: an alarm
that a client has seen acknowledged is in the database. With SQLite (the default, embedded, no
set-up) the database runs in WAL mode with ``synchronous=FULL``, so a commit is on disk (the WAL
is fsynced) before it returns and survives ``kill -9`` or a power cut; WAL also lets readers
(dashboards, ``sqlite3``) query while the service writes. Any other SQLAlchemy URL works, e.g.
``postgresql+psycopg://user@host/db`` for several replicas writing to one database.

SQLAlchemy is imported lazily: this module loads without the ``serve`` extra.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from trustlab.core.exceptions import InputError
from trustlab.core.files import sha256_bytes
from trustlab.serve.config import redact_url

TABLE = "trustlab_alarms"
SQLITE_PRAGMAS = ("PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL", "PRAGMA busy_timeout=5000")


def input_sha256(x: Any) -> str:
    """SHA-256 of one input as float32 little-endian bytes in C order (hex)."""
    array = np.ascontiguousarray(np.asarray(x, dtype="<f4"))
    return sha256_bytes(array.tobytes())


@dataclass(frozen=True)
class AlarmRow:
    """One alarm as stored: when, which request and input, its score, p-value and label."""

    time: datetime
    request_id: str
    input_index: int
    input_sha256: str
    label: int
    score: float
    p_value: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "time": self.time,
            "request_id": self.request_id,
            "input_index": self.input_index,
            "input_sha256": self.input_sha256,
            "label": self.label,
            "score": self.score,
            "p_value": self.p_value,
        }


class AlarmRecord:
    """Append-only store of alarms behind a SQLAlchemy engine. Thread-safe through the engine's
    pool; the service writes from one thread so rows keep their scoring order."""

    def __init__(self, url: str) -> None:
        import sqlalchemy as sa

        self.url = url
        try:
            self.engine = sa.create_engine(url, pool_pre_ping=True)
        except (sa.exc.ArgumentError, ImportError) as exc:  # their text may quote the URL: not shown
            reason = (
                "its driver is not installed"
                if isinstance(exc, ImportError | sa.exc.NoSuchModuleError)
                else ("not a valid SQLAlchemy URL")
            )
            raise InputError(f"cannot use the alarm database {redact_url(url)}: {reason}") from None
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        if self.is_sqlite:
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        metadata = sa.MetaData()
        self.table = sa.Table(
            TABLE,
            metadata,
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("time", sa.DateTime(timezone=True), nullable=False, index=True),
            sa.Column("request_id", sa.String(64), nullable=False, index=True),
            sa.Column("input_index", sa.Integer, nullable=False),
            sa.Column("input_sha256", sa.String(64), nullable=False),
            sa.Column("label", sa.Integer, nullable=False),
            sa.Column("score", sa.Float, nullable=False),
            sa.Column("p_value", sa.Float, nullable=False),
        )
        self._metadata = metadata

    def create(self) -> None:
        """Create the table if absent (replicas may race to do so: the loser finds it there). An
        unreachable database is an InputError naming the URL without its password."""
        import sqlalchemy as sa

        try:
            try:
                self._metadata.create_all(self.engine, checkfirst=True)
            except sa.exc.SQLAlchemyError:
                if not sa.inspect(self.engine).has_table(TABLE):
                    raise
        except sa.exc.SQLAlchemyError as exc:  # the driver's text may quote credentials: only its kind
            kind = type(getattr(exc, "orig", None) or exc).__name__
            raise InputError(f"cannot open the alarm database {redact_url(self.url)}: {kind}") from None

    def append(self, rows: list[AlarmRow]) -> None:
        """Insert ``rows`` in one transaction; returns once committed (durable, see module doc)."""
        if not rows:
            return
        with self.engine.begin() as connection:
            connection.execute(self.table.insert(), [row.to_dict() for row in rows])

    def count(self) -> int:
        import sqlalchemy as sa

        with self.engine.connect() as connection:
            return int(connection.execute(sa.select(sa.func.count()).select_from(self.table)).scalar_one())

    def journal_mode(self) -> str | None:
        """SQLite's journal mode (``wal``), None for other databases."""
        if not self.is_sqlite:
            return None
        import sqlalchemy as sa

        with self.engine.connect() as connection:
            return str(connection.execute(sa.text("PRAGMA journal_mode")).scalar_one()).lower()

    def close(self) -> None:
        self.engine.dispose()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        for pragma in SQLITE_PRAGMAS:
            cursor.execute(pragma)
    finally:
        cursor.close()


def alarm_rows(request_id: str, x: Any, prediction: Any, *, now: datetime | None = None) -> list[AlarmRow]:
    """The rows for the inputs of one request that raised the alarm (``prediction`` holds the
    answers for ``x``, in order)."""
    flags = prediction.alarms.tolist()
    if not any(flags):
        return []
    now = now or datetime.now(UTC)
    x = np.asarray(x)
    labels, scores, p_values = prediction.labels.tolist(), prediction.scores.tolist(), prediction.p_values.tolist()
    return [
        AlarmRow(now, request_id, i, input_sha256(x[i]), int(labels[i]), float(scores[i]), float(p_values[i]))
        for i, flag in enumerate(flags)
        if flag
    ]
