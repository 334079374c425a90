"""The alarm record: one row per alarm with its request id and input hash, SQLite in WAL mode
with full sync by default, and the same rows in a real PostgreSQL server."""

import hashlib
import sqlite3

import numpy as np
import pytest
import torch

from trustlab.serve.record import AlarmRecord, input_sha256


def by_hand_sha256(x: torch.Tensor) -> str:
    return hashlib.sha256(x.numpy().astype("<f4").tobytes()).hexdigest()


def check_rows(rows, request_id, x, guard, indices):
    expected = guard.predict(x)
    mine = sorted((r for r in rows if r["request_id"] == request_id), key=lambda r: r["input_index"])
    assert [r["input_index"] for r in mine] == indices
    for row in mine:
        i = row["input_index"]
        assert row["input_sha256"] == by_hand_sha256(x[i])
        assert row["label"] == int(expected.labels[i])
        assert row["score"] == pytest.approx(float(expected.scores[i]), abs=1e-6)
        assert row["p_value"] == pytest.approx(float(expected.p_values[i]))
        assert row["time"] is not None


def test_every_alarm_is_a_row_in_sqlite_wal(client_factory, guard, alarming, calm, tmp_path):
    client = client_factory()
    x = torch.cat([calm[:2], alarming[:3], calm[2:3]])
    response = client.post("/v1/predict", json={"inputs": x.tolist()}, headers={"x-request-id": "req-1"})
    assert response.status_code == 200 and response.json()["alarms"] == 3
    quiet = client.post("/v1/predict", json={"inputs": calm[:4].tolist()})
    assert quiet.json()["alarms"] == 0
    path = tmp_path / "alarms.sqlite"
    with sqlite3.connect(path) as db:  # read as any other tool would, while the service runs
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        columns = [c[1] for c in db.execute("PRAGMA table_info(trustlab_alarms)")]
        rows = [dict(zip(columns, r)) for r in db.execute("SELECT * FROM trustlab_alarms")]
    assert len(rows) == 3  # alarms only
    check_rows(rows, "req-1", x, guard, [2, 3, 4])


def test_sqlite_connections_sync_fully(tmp_path):
    record = AlarmRecord(f"sqlite:///{tmp_path / 'a.sqlite'}")
    record.create()
    import sqlalchemy as sa

    with record.engine.connect() as connection:
        assert connection.execute(sa.text("PRAGMA synchronous")).scalar_one() == 2  # FULL
    assert record.journal_mode() == "wal" and record.count() == 0
    record.close()


def test_input_hash_is_of_float32_little_endian_bytes():
    x = np.arange(6, dtype=np.float64).reshape(1, 2, 3) / 7
    assert input_sha256(x) == hashlib.sha256(x.astype("<f4").tobytes()).hexdigest()
    assert input_sha256(torch.from_numpy(x).float()) == input_sha256(x)


def test_alarms_reach_a_real_postgresql_server(postgres_url, client_factory, guard, alarming, calm):
    client = client_factory(db=postgres_url)
    x = torch.cat([alarming[:2], calm[:1]])
    response = client.post("/v1/predict", json={"inputs": x.tolist()}, headers={"x-request-id": "pg-1"})
    assert response.status_code == 200 and response.json()["alarms"] == 2
    import psycopg

    with psycopg.connect(postgres_url.replace("postgresql+psycopg", "postgresql")) as connection:
        cursor = connection.execute(
            "SELECT request_id, input_index, input_sha256, label, score, p_value, time FROM trustlab_alarms"
        )
        columns = [c.name for c in cursor.description]
        rows = [dict(zip(columns, r)) for r in cursor.fetchall()]
    check_rows(rows, "pg-1", x, guard, [0, 1])
    record = AlarmRecord(postgres_url)
    record.create()  # a second replica finds the table there
    assert record.count() >= 2 and record.journal_mode() is None
    record.close()
