"""Shared fixtures. Tests never touch the network: downloads are switched off for every test.

Tests that need the reference data (../shared/data, via TRUSTLAB_DATA) skip when it is absent,
unless TRUSTLAB_REQUIRE_DATA=1 (set by CI), where its absence is a failure.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REFERENCE_DATA = os.environ.get("TRUSTLAB_DATA")


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    monkeypatch.setenv("TRUSTLAB_OFFLINE", "1")
    monkeypatch.delenv("TRUSTLAB_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """``trustlab demo`` run once per session (about 20 s): its run directory and what it printed."""
    import contextlib
    import io

    from trustlab.cli import main

    out = tmp_path_factory.mktemp("demo") / "run"
    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(printed):
        patch.setenv("TRUSTLAB_OFFLINE", "1")
        patch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
        with pytest.raises(SystemExit) as info:
            main(["--quiet", "demo", "--out", str(out)])
    assert info.value.code == 0, printed.getvalue()
    return out, printed.getvalue()


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for a test module: on a loaded 2-core machine, two spinning threads
    run ~10x slower. Modules that run models a lot use it (autouse in their folder's conftest)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def reference_data() -> Path:
    """The reference data directory, or a skip (a failure when TRUSTLAB_REQUIRE_DATA=1)."""
    if REFERENCE_DATA and (Path(REFERENCE_DATA) / "mnist" / "t10k-images-idx3-ubyte.gz").is_file():
        return Path(REFERENCE_DATA)
    if os.environ.get("TRUSTLAB_REQUIRE_DATA") == "1":
        pytest.fail("TRUSTLAB_REQUIRE_DATA=1 but TRUSTLAB_DATA does not point at the reference data")
    pytest.skip("reference data not available (set TRUSTLAB_DATA)")


@pytest.fixture()
def tiny_cnn():
    """A small, fast MNIST-shaped classifier with normalisation, for model-layer tests."""
    from trustlab.models import Classifier, build_architecture

    config = {"channels": [4, 8], "hidden": 16}
    module = build_architecture("mnist_cnn", seed=0, **config)
    return Classifier(
        module,
        input_shape=(1, 28, 28),
        num_classes=10,
        mean=0.13,
        std=0.31,
        architecture="mnist_cnn",
        config=config,
        batch_size=32,
    )


@pytest.fixture()
def images() -> torch.Tensor:
    return torch.rand(50, 1, 28, 28, generator=torch.Generator().manual_seed(0))
