"""`trustlab serve`: --check, the loopback rule, and a real uvicorn server killed with -9 in the
middle of a stream of requests: after a restart, every alarm whose answer arrived is stored."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from cli_helpers import assert_one_line_error, run_cli
from trustlab.serve.auth import ENV_VAR


def test_check_prints_the_effective_configuration_without_keys(capsys, guard_file, tmp_path, monkeypatch, api_key):
    monkeypatch.setenv(ENV_VAR, api_key)
    code, out, err = run_cli(
        capsys, "serve", guard_file, "--check", "--host", "0.0.0.0", "--port", "9001", "--max-batch", "32",
        "--max-wait-ms", "5", "--db", tmp_path / "a.sqlite", "--drift-window", "500",
    )  # fmt: skip
    assert code == 0, err
    config = json.loads(out)
    assert config["host"] == "0.0.0.0" and config["port"] == 9001 and config["max_batch"] == 32
    assert config["max_wait_ms"] == 5.0 and config["drift_window"] == 500
    assert config["db"] == f"sqlite:///{(tmp_path / 'a.sqlite').resolve()}"
    assert config["api_keys"] == f"1 key(s) from ${ENV_VAR}"
    assert config["guard_summary"]["detector"] == "msp" and config["guard_summary"]["calibration_size"] == 200
    assert api_key not in out and api_key not in err


def test_non_loopback_without_keys_is_refused(capsys, guard_file, monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    for host in ("0.0.0.0", "192.168.0.10", "::"):
        code, _, err = run_cli(capsys, "serve", guard_file, "--host", host, "--check")
        assert_one_line_error(code, err, f"refusing to serve on '{host}' without API keys")


def test_bad_guard_and_key_files_are_one_line_errors(capsys, tmp_path, guard_file):
    code, _, err = run_cli(capsys, "serve", tmp_path / "missing.safetensors", "--check")
    assert_one_line_error(code, err, "does not exist")
    (tmp_path / "keys").write_text("short\n")
    code, _, err = run_cli(capsys, "serve", guard_file, "--api-keys-file", tmp_path / "keys", "--check")
    assert_one_line_error(code, err, "at least 16 characters")
    assert "short" not in err.replace("shorter", "")


def test_unusable_databases_fail_before_binding(capsys, tmp_path, guard_file):
    code, _, err = run_cli(capsys, "serve", guard_file, "--db", f"sqlite:///{tmp_path}/missing/dir/a.sqlite")
    assert_one_line_error(code, err, "cannot open the alarm database sqlite:///", "OperationalError")
    code, _, err = run_cli(capsys, "serve", guard_file, "--db", "nosuchdb+driver://svc:pa55word@db.internal/alarms")
    assert_one_line_error(code, err, "cannot use the alarm database nosuchdb+driver://svc:***@db.internal/alarms")
    assert "pa55word" not in err


def _start(guard_file: Path, port: int, db: Path, log: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != ENV_VAR}
    command = [sys.executable, "-c", "from trustlab.cli import main; main()", "--quiet", "serve", str(guard_file),
               "--port", str(port), "--db", str(db), "--max-wait-ms", "5", "--threads", "1"]  # fmt: skip
    return subprocess.Popen(command, stdout=log.open("ab"), stderr=subprocess.STDOUT, env=env)


def _wait_ready(url: str, process: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "the server exited"
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("the server did not become ready")


@pytest.mark.slow
def test_acknowledged_alarms_survive_kill_9(guard_file, alarming, calm, tmp_path, port_factory):
    port, db, log = port_factory(), tmp_path / "alarms.sqlite", tmp_path / "server.log"
    url = f"http://127.0.0.1:{port}"
    server = _start(guard_file, port, db, log)
    acknowledged: list[tuple[str, int]] = []  # (request id, input index) of alarms answered 200
    lock = threading.Lock()
    try:
        _wait_ready(url, server)

        def client(worker: int) -> None:
            with httpx.Client(base_url=url, timeout=5) as http:
                for i in range(10_000):
                    x = (alarming if (i + worker) % 2 else calm)[(i * 7 + worker) % 16 : (i * 7 + worker) % 16 + 2]
                    try:
                        response = http.post("/v1/predict", json={"inputs": x.tolist()})
                    except httpx.TransportError:
                        return  # the server is gone
                    if response.status_code == 200:
                        body = response.json()
                        with lock:
                            acknowledged.extend(
                                (body["request_id"], i) for i, p in enumerate(body["predictions"]) if p["alarm"]
                            )

        workers = [threading.Thread(target=client, args=(w,)) for w in range(4)]
        for worker in workers:
            worker.start()
        while len(acknowledged) < 30 and all(w.is_alive() for w in workers):
            time.sleep(0.01)
        server.send_signal(signal.SIGKILL)  # in the middle of the stream
        server.wait(timeout=10)
        for worker in workers:
            worker.join(timeout=10)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert server.returncode == -signal.SIGKILL and len(acknowledged) >= 30

    restarted = _start(guard_file, port, db, log)  # restarts on the same database (WAL recovery)
    try:
        _wait_ready(url, restarted)
        answered = httpx.post(f"{url}/v1/predict", json={"inputs": alarming[:1].tolist()}, timeout=10)
        assert answered.status_code == 200 and answered.json()["alarms"] == 1
        restarted.send_signal(signal.SIGTERM)  # graceful: drains, shuts the app down, then exits
        assert restarted.wait(timeout=30) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal it caught
    finally:
        if restarted.poll() is None:
            restarted.kill()
            restarted.wait()
    with sqlite3.connect(db) as connection:
        stored = set(connection.execute("SELECT request_id, input_index FROM trustlab_alarms").fetchall())
    missing = set(acknowledged) - stored
    assert not missing, f"{len(missing)} acknowledged alarms lost of {len(acknowledged)}"
    assert (answered.json()["request_id"], 0) in stored
    logged = log.read_text()
    assert "Application shutdown complete" in logged and "Traceback" not in logged
