"""Load and fault benchmark of the HTTP alarm service (``trustlab serve``) on loopback.

How to run
----------
From the repository root (the ``serve`` extra installed, the reference MNIST data beside the repo)::

    .venv/bin/python benchmarks/serve_load.py              # full run, about 3 minutes on 2 cores
    .venv/bin/python benchmarks/serve_load.py --quick      # smoke test, under a minute
    .venv/bin/python benchmarks/serve_load.py --help

What it measures
----------------
``load``
    For each guard (MSP and energy on the shipped ``mnist_cnn``, fitted on the MNIST training
    split and calibrated at alpha = 0.05 on one half of the test split, through
    ``trustlab.ood.checks.fit_guard``), a fresh server is started in a subprocess (one uvicorn
    process, micro-batching at ``--max-batch`` inputs or ``--max-wait-ms``). Then 1, 8 and 32
    concurrent clients each send requests back to back for ``--seconds`` (after a one-second
    warm-up that is not counted): single MNIST test digits as JSON, then batches of 64 as
    ``.npy`` bodies. Reported: requests and 5xx answers, latency p50/p99 (time from sending
    the request to reading the whole answer), requests and inputs per second, and the
    throughput ratio 32 clients / 1 client, measured in the same run.
``fault``
    8 clients send single inputs (half MNIST digits, half uniform noise, so that alarms are
    frequent); after ``--fault-after`` seconds the server is killed with SIGKILL, restarted on
    the same SQLite database, and every alarm whose 200 answer was received is looked up in it.

The clients are asyncio streams speaking HTTP/1.1 with keep-alive (one connection per client,
requests serialised once in advance): on a 2-core machine, a general-purpose client such as
httpx costs as much CPU per request as the server does, and would measure itself. Client and
server share the machine, so the figures are a lower bound on the server's capacity.
Results go to ``benchmarks/results/serve.json`` and ``serve.md`` (``serve-quick.*`` with ``--quick``).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import default_data_dir, environment, fmt_busy, log, other_cpu_load  # noqa: E402

from trustlab.core.progress import set_quiet  # noqa: E402
from trustlab.data import load_dataset  # noqa: E402
from trustlab.models import load_reference_model  # noqa: E402
from trustlab.ood.checks import fit_guard, holdout_halves  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


# ---------------------------------------------------------------------- HTTP client ---------
def request_bytes(port: int, body: bytes, content_type: str) -> bytes:
    head = (
        f"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n"
    )
    return head.encode() + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    return status, await reader.readexactly(length)


class Connection:
    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def send(self, raw: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.writer.write(raw)
        await self.writer.drain()
        return await read_response(self.reader)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except (ConnectionError, OSError):
                pass


async def run_load(port: int, requests: list[bytes], clients: int, seconds: float, warmup: float) -> dict:
    """``clients`` connections send requests back to back; statistics over the measured window."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    start = time.perf_counter()
    measure_from, stop_at = start + warmup, start + warmup + seconds

    async def client(k: int) -> None:
        connection = Connection(port)
        i = k
        try:
            while True:
                sent = time.perf_counter()
                if sent >= stop_at:
                    return
                status, _ = await connection.send(requests[i % len(requests)])
                done = time.perf_counter()
                i += clients
                if sent >= measure_from:
                    latencies.append(done - sent)
                    statuses[status] = statuses.get(status, 0) + 1
        finally:
            await connection.close()

    await asyncio.gather(*(client(k) for k in range(clients)))
    latencies.sort()
    n = len(latencies)
    return {
        "clients": clients,
        "requests": n,
        "status_counts": {str(k): v for k, v in sorted(statuses.items())},
        "errors_5xx": sum(v for k, v in statuses.items() if k >= 500),
        "p50_ms": 1000 * latencies[n // 2] if n else None,
        "p99_ms": 1000 * latencies[min(n - 1, int(0.99 * n))] if n else None,
        "mean_ms": 1000 * statistics.fmean(latencies) if n else None,
        "requests_per_s": n / seconds,
    }


# ---------------------------------------------------------------------- server --------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(guard: Path, port: int, db: Path, args: argparse.Namespace, log_path: Path) -> subprocess.Popen:
    command = [
        sys.executable, "-c", "from trustlab.cli import main; main()", "--quiet", "serve", str(guard),
        "--port", str(port), "--db", str(db), "--max-batch", str(args.max_batch), "--max-wait-ms",
        str(args.max_wait_ms), "--threads", str(args.server_threads), "--queue-size", "1024", "--log-level", "warning",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "TRUSTLAB_API_KEYS"}
    return subprocess.Popen(command, stdout=log_path.open("ab"), stderr=subprocess.STDOUT, env=env)


def wait_ready(port: int, process: subprocess.Popen, timeout: float = 120.0) -> float:
    started = time.perf_counter()
    raw = f"GET /readyz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode()
    while time.perf_counter() - started < timeout:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with code {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(raw)
                if b" 200 " in s.recv(200):
                    return time.perf_counter() - started
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError("the server did not become ready")


def stop(process: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# ---------------------------------------------------------------------- bodies --------------
def json_body(x: torch.Tensor) -> bytes:
    # pixels as a client holding 8-bit images would send them: 4 decimals
    return json.dumps({"inputs": np.round(x.numpy().astype(np.float64), 4).tolist()}).encode()


def npy_body(x: torch.Tensor) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, x.numpy().astype(np.float32))
    return buffer.getvalue()


# ---------------------------------------------------------------------- runs ----------------
def load_section(guard_path: Path, name: str, digits: torch.Tensor, args, work: Path) -> dict:
    port = free_port()
    server = start_server(guard_path, port, work / f"{name}-load.sqlite", args, work / "server.log")
    try:
        ready_s = wait_ready(port, server)
        singles = [request_bytes(port, json_body(digits[i : i + 1]), "application/json") for i in range(256)]
        batches = [
            request_bytes(port, npy_body(digits[i : i + 64]), "application/x-npy") for i in range(0, 64 * 16, 64)
        ]
        rows = []
        for mode, requests, per_request in (("single (JSON)", singles, 1), ("batch of 64 (.npy)", batches, 64)):
            for clients in args.clients:
                row = asyncio.run(run_load(port, requests, clients, args.seconds, args.warmup))
                row.update(mode=mode, inputs_per_s=row["requests_per_s"] * per_request)
                log(
                    f"  {name} {mode:>19} x{clients:>2}: {row['requests']:>6} requests, 5xx {row['errors_5xx']}, "
                    f"p50 {row['p50_ms']:.1f} ms, p99 {row['p99_ms']:.1f} ms, {row['requests_per_s']:.0f} req/s, "
                    f"{row['inputs_per_s']:.0f} inputs/s"
                )
                rows.append(row)
    finally:
        stop(server)
    ratios = {}
    for mode in ("single (JSON)", "batch of 64 (.npy)"):
        by = {r["clients"]: r for r in rows if r["mode"] == mode}
        low, high = min(args.clients), max(args.clients)
        if by[low]["requests_per_s"]:
            ratios[mode] = by[high]["requests_per_s"] / by[low]["requests_per_s"]
    return {"guard": name, "server_ready_s": ready_s, "rows": rows, "throughput_ratio": ratios}


def fault_section(guard_path: Path, digits: torch.Tensor, args, work: Path) -> dict:
    port, db = free_port(), work / "fault.sqlite"
    noise = torch.rand(256, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    mixed = torch.stack([t for pair in zip(digits[:256], noise) for t in pair])
    requests = [request_bytes(port, json_body(mixed[i : i + 1]), "application/json") for i in range(len(mixed))]
    server = start_server(guard_path, port, db, args, work / "server.log")
    wait_ready(port, server)
    acknowledged: set[tuple[str, int]] = set()
    answered = [0]

    async def client(k: int, deadline: float) -> None:
        connection = Connection(port)
        i = k
        try:
            while time.perf_counter() < deadline + 30:
                try:
                    status, body = await connection.send(requests[i % len(requests)])
                except (ConnectionError, OSError, asyncio.IncompleteReadError):
                    return  # killed
                i += 8
                if status == 200:
                    answer = json.loads(body)
                    answered[0] += 1
                    acknowledged.update(
                        (answer["request_id"], j) for j, p in enumerate(answer["predictions"]) if p["alarm"]
                    )
        finally:
            await connection.close()

    async def killer(deadline: float) -> None:
        await asyncio.sleep(max(0.0, deadline - time.perf_counter()))
        server.send_signal(signal.SIGKILL)

    async def scenario() -> None:
        deadline = time.perf_counter() + args.fault_after
        await asyncio.gather(killer(deadline), *(client(k, deadline) for k in range(8)))

    asyncio.run(scenario())
    server.wait(timeout=30)
    restarted = start_server(guard_path, port, db, args, work / "server.log")
    try:
        wait_ready(port, restarted)  # the database opens and recovers its WAL
    finally:
        stop(restarted)
    with sqlite3.connect(db) as connection:
        stored = set(connection.execute("SELECT request_id, input_index FROM trustlab_alarms").fetchall())
    missing = acknowledged - stored
    result = {
        "killed_after_s": args.fault_after,
        "answers_received": answered[0],
        "acknowledged_alarms": len(acknowledged),
        "alarms_in_database": len(stored),
        "acknowledged_missing": len(missing),
        "stored_but_unacknowledged": len(stored - acknowledged),
        "exit_signal": -server.returncode if server.returncode and server.returncode < 0 else server.returncode,
    }
    log(f"  fault: {result}")
    return result


def guards(args, work: Path) -> dict[str, Path]:
    data_dir = args.data_dir
    train = load_dataset("mnist", "train", root=data_dir)
    holdout = load_dataset("mnist", "test", root=data_dir)
    calibration, evaluation = holdout_halves(holdout, seed=0)
    classifier = load_reference_model("mnist_cnn")
    paths = {}
    for name in args.detectors:
        guard, realised = fit_guard(classifier, train, calibration, evaluation, detector=name, alpha=0.05)
        paths[name] = guard.save(work / f"{name}.safetensors")
        log(f"{name}: threshold {guard.threshold.threshold:.5g}, realised false alarms {100 * realised:.2f}%")
    return paths, evaluation.x


def markdown(report: dict) -> str:
    env = report["environment"]
    lines = [
        "# Alarm service load benchmark",
        "",
        f"torch {env['versions']['torch']}, {env['cpu_count']} CPUs, server torch threads {report['server_threads']}, "
        f"{env['platform']}. Generated by `benchmarks/serve_load.py`; do not edit by hand.",
        "",
        f"Ran {report['ran']} ({report['elapsed_s']:.0f} s); CPUs busy with other work just before: "
        f"{fmt_busy(report['busy_before'])}, load average {report['load_average']:.2f}. Micro-batching: at "
        f"most {report['max_batch']} inputs or {report['max_wait_ms']:g} ms per model call; {report['seconds']:g} s "
        f"measured per row after {report['warmup']:g} s of warm-up. Client and server share the machine (loopback).",
        "",
    ]
    for section in report["load"]:
        lines += [
            f"## {section['guard']} guard (server ready {section['server_ready_s']:.1f} s after start)",
            "",
            "| requests | clients | answered | 5xx | p50 ms | p99 ms | requests/s | inputs/s |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in section["rows"]:
            lines.append(
                f"| {r['mode']} | {r['clients']} | {r['requests']:,} | {r['errors_5xx']} | {r['p50_ms']:.1f} | "
                f"{r['p99_ms']:.1f} | {r['requests_per_s']:.0f} | {r['inputs_per_s']:.0f} |"
            )
        ratio = ", ".join(f"{mode}: {value:.1f}x" for mode, value in section["throughput_ratio"].items())
        lines += ["", f"Throughput {max(report['clients'])} clients / {min(report['clients'])} client: {ratio}.", ""]
    fault = report.get("fault")
    if fault:
        lines += [
            "## Fault: kill -9 during the load, restart",
            "",
            f"8 clients sending single inputs (half noise); SIGKILL after {fault['killed_after_s']:g} s, then a "
            f"restart on the same SQLite database. Answers received: {fault['answers_received']:,}; alarms "
            f"acknowledged: {fault['acknowledged_alarms']:,}; alarms in the database: {fault['alarms_in_database']:,}; "
            f"**acknowledged alarms missing: {fault['acknowledged_missing']}** (stored but never acknowledged, "
            f"answers lost in flight: {fault['stored_but_unacknowledged']}).",
            "",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke test: 2 s per row, MSP only")
    parser.add_argument("--data-dir", default=default_data_dir())
    parser.add_argument("--detectors", default="msp,energy")
    parser.add_argument("--clients", default="1,8,32")
    parser.add_argument("--seconds", type=float, default=6.0, help="measured seconds per row")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--max-batch", type=int, default=64)
    parser.add_argument("--max-wait-ms", type=float, default=2.0)
    parser.add_argument("--server-threads", type=int, default=1, help="torch threads of the server")
    parser.add_argument("--fault-after", type=float, default=4.0, help="seconds of load before kill -9")
    parser.add_argument("--no-fault", action="store_true")
    parser.add_argument("--out", default=None, help="output path without suffix")
    args = parser.parse_args()
    args.detectors = [d.strip() for d in args.detectors.split(",") if d.strip()]
    args.clients = [int(c) for c in args.clients.split(",")]
    if args.quick:
        args.seconds, args.detectors, args.fault_after = 2.0, args.detectors[:1], 2.0
    set_quiet(True)
    torch.set_num_threads(1)
    out = Path(args.out) if args.out else RESULTS / ("serve-quick" if args.quick else "serve")
    started = time.perf_counter()
    busy = other_cpu_load()
    load_average = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="trustlab-serve-bench-") as tmp:
        work = Path(tmp)
        paths, digits = guards(args, work)
        load = []
        for name, path in paths.items():
            log(f"load: {name} guard")
            load.append(load_section(path, name, digits, args, work))
        fault = None if args.no_fault else fault_section(paths[args.detectors[0]], digits, args, work)
        server_log = (work / "server.log").read_text(errors="replace")
    report = {
        "ran": datetime.now(UTC).isoformat(timespec="seconds"),
        "elapsed_s": time.perf_counter() - started,
        "busy_before": busy,
        "load_average": load_average,
        "environment": environment(1, (("fastapi", "fastapi"), ("uvicorn", "uvicorn"), ("sqlalchemy", "sqlalchemy"))),
        "server_threads": args.server_threads,
        "max_batch": args.max_batch,
        "max_wait_ms": args.max_wait_ms,
        "seconds": args.seconds,
        "warmup": args.warmup,
        "clients": args.clients,
        "load": load,
        "fault": fault,
        "server_tracebacks": server_log.count("Traceback"),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(report) + "\n")
    log(f"written {out.with_suffix('.md')} and .json in {report['elapsed_s']:.0f} s")


if __name__ == "__main__":
    main()
