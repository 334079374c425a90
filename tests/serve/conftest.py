"""Fixtures of the alarm-service tests: a small MSP guard on the shipped CNN, inputs that do and
do not raise its alarm, apps run in-process, and a real PostgreSQL server when one can be had.

The service is an extra: without FastAPI, SQLAlchemy or httpx these tests are skipped."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import warnings
from glob import glob
from pathlib import Path

import pytest
import torch

for _module in ("fastapi", "sqlalchemy", "httpx", "prometheus_client", "uvicorn"):
    pytest.importorskip(_module, reason=f"the serve extra is not installed ({_module} missing)")

with warnings.catch_warnings():  # starlette asks for httpx2, which is not needed for these tests
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from trustlab.data import load_dataset  # noqa: E402
from trustlab.models import load_reference_model  # noqa: E402
from trustlab.ood.base import make_detector  # noqa: E402
from trustlab.ood.guard import GuardedClassifier  # noqa: E402
from trustlab.serve.app import create_app  # noqa: E402
from trustlab.serve.config import ServeConfig  # noqa: E402

ALPHA = 0.1
API_KEY = "test-key-0123456789abcdef"


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_thread):
    """The model runs in every module here (see ``one_thread``)."""


@pytest.fixture(scope="session")
def guard() -> GuardedClassifier:
    """MSP on the shipped MNIST CNN, calibrated at alpha 0.1 on 200 bundled test digits."""
    data = load_dataset("mnist", "sample")
    classifier = load_reference_model()
    detector = make_detector("msp", classifier).fit(data.subset(slice(0, 200)))
    return GuardedClassifier.calibrate(classifier, detector, data.x[200:400], alpha=ALPHA)


@pytest.fixture(scope="session")
def guard_file(guard, tmp_path_factory) -> Path:
    return guard.save(tmp_path_factory.mktemp("guard") / "guard.safetensors")


@pytest.fixture(scope="session")
def alarming(guard) -> torch.Tensor:
    """Uniform-noise images that raise the guard's alarm (chosen by the guard itself)."""
    noise = torch.rand(64, 1, 28, 28, generator=torch.Generator().manual_seed(3))
    flagged = noise[guard.predict(noise).alarms]
    assert len(flagged) >= 16
    return flagged[:16].contiguous()


@pytest.fixture(scope="session")
def calm(guard) -> torch.Tensor:
    """Held-out digits that do not raise the alarm."""
    digits = load_dataset("mnist", "sample").x[400:500]
    kept = digits[~guard.predict(digits).alarms]
    assert len(kept) >= 16
    return kept[:16].contiguous()


def make_config(tmp_path: Path, **overrides) -> ServeConfig:
    settings = {"guard": tmp_path / "guard.safetensors", "db": f"sqlite:///{tmp_path / 'alarms.sqlite'}"}
    settings.update(overrides)
    return ServeConfig(**settings)


def wait_ready(client, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.get("/readyz")
        if status.status_code == 200 or status.json()["status"] == "failed":
            break
        time.sleep(0.02)
    assert status.status_code == 200, f"the service did not become ready: {status.json()}"


@contextlib.contextmanager
def serving(guard, config: ServeConfig, headers: dict[str, str] | None = None):
    """A TestClient on ``create_app(config, guard=guard)``, ready to predict."""
    app = create_app(config, guard=guard)
    with TestClient(app, headers=headers or {}, raise_server_exceptions=False) as client:
        wait_ready(client)
        yield client


@contextlib.asynccontextmanager
async def serving_async(guard, config: ServeConfig):
    """An httpx AsyncClient on the app, in this event loop (for concurrent requests), and the app."""
    import httpx

    app = create_app(config, guard=guard)
    async with app.router.lifespan_context(app):
        service = app.state.service
        for _ in range(1500):
            if service.ready:
                break
            await asyncio.sleep(0.02)
        assert service.ready, service.state
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client, app


@pytest.fixture(scope="session")
def api_key() -> str:
    return API_KEY


@pytest.fixture
def config_factory(tmp_path):
    """``config_factory(**overrides)`` -> a ServeConfig with its database in the test's folder."""
    return lambda **overrides: make_config(tmp_path, **overrides)


@pytest.fixture(scope="session")
def async_serving():
    """``async with async_serving(guard, config) as (client, app)``: see :func:`serving_async`."""
    return serving_async


@pytest.fixture(scope="session")
def start_service():
    """``with start_service(guard, folder, **overrides) as client``: a ready TestClient whose
    database lives in ``folder``, for fixtures wider than one test."""
    return lambda guard, folder, **overrides: serving(guard, make_config(folder, **overrides))


@pytest.fixture(scope="session")
def port_factory():
    return free_port


@pytest.fixture
def client_factory(guard, tmp_path):
    """``client_factory(**config_overrides)`` -> a ready TestClient (closed after the test)."""
    with contextlib.ExitStack() as stack:

        def make(guard_override=None, headers=None, **overrides):
            config = make_config(tmp_path, **overrides)
            return stack.enter_context(serving(guard_override or guard, config, headers))

        yield make


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------- PostgreSQL -----------
def _postgres_binaries() -> Path | None:
    for initdb in sorted(glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True):
        return Path(initdb).parent
    found = shutil.which("initdb")
    return Path(found).resolve().parent if found else None


@pytest.fixture(scope="session")
def postgres_url():
    """A throwaway PostgreSQL server (Debian's binaries) on a free port: its SQLAlchemy URL.

    As root, the cluster belongs to the ``postgres`` user (PostgreSQL refuses to run as root).
    Skipped, saying why, where the binaries or psycopg are missing."""
    pytest.importorskip("psycopg", reason="psycopg is not installed (PostgreSQL driver)")
    binaries = _postgres_binaries()
    if binaries is None:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql): PostgreSQL record test skipped")
    prefix: list[str] = []
    root = tempfile.mkdtemp(prefix="trustlab-pg-")
    if os.geteuid() == 0:
        import pwd

        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and no 'postgres' user to own the test cluster")
        os.chown(root, user.pw_uid, user.pw_gid)
        prefix = [shutil.which("runuser") or "/usr/sbin/runuser", "-u", "postgres", "--"]
    data, port = os.path.join(root, "data"), free_port()

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*prefix, *args], capture_output=True, text=True, timeout=120)

    done = run(str(binaries / "initdb"), "-D", data, "-U", "trustlab", "-A", "trust", "--no-sync", "-E", "UTF8")
    if done.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"initdb failed: {done.stderr.strip().splitlines()[-1:]}")
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=on"
    started = run(str(binaries / "pg_ctl"), "-D", data, "-o", options, "-l", os.path.join(root, "log"), "-w", "start")
    if started.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"PostgreSQL did not start: {started.stderr.strip()[-300:]}")
    try:
        yield f"postgresql+psycopg://trustlab@127.0.0.1:{port}/postgres"
    finally:
        run(str(binaries / "pg_ctl"), "-D", data, "-m", "fast", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)
