"""tune_allocator: sets glibc's two malloc thresholds together, or nothing."""

import ctypes
import platform

import pytest

from trustlab.core import allocator


class _FakeLibc:
    """Records mallopt calls; ``accept`` says what each returns (glibc: 1 on success, 0 on failure)."""

    def __init__(self, accept: int = 1) -> None:
        self.calls: list[tuple[int, int]] = []
        self.accept = accept

        def mallopt(param: int, value: int) -> int:
            self.calls.append((param, value))
            return self.accept

        self.mallopt = mallopt


def test_both_thresholds_are_set_together(monkeypatch):
    fake = _FakeLibc()
    monkeypatch.delenv(allocator.OPT_OUT, raising=False)
    monkeypatch.setattr(ctypes, "CDLL", lambda name: fake)
    assert allocator.tune_allocator(mmap_threshold=1 << 20, trim_threshold=2 << 20) is True
    assert fake.calls == [(allocator._M_MMAP_THRESHOLD, 1 << 20), (allocator._M_TRIM_THRESHOLD, 2 << 20)]


def test_opt_out_changes_nothing(monkeypatch):
    fake = _FakeLibc()
    monkeypatch.setenv(allocator.OPT_OUT, "0")
    monkeypatch.setattr(ctypes, "CDLL", lambda name: fake)
    assert allocator.tune_allocator() is False
    assert fake.calls == []


@pytest.mark.parametrize("problem", ["no library", "no mallopt", "refused"])
def test_a_c_library_without_glibc_malloc_is_left_alone(monkeypatch, problem):
    monkeypatch.delenv(allocator.OPT_OUT, raising=False)

    def cdll(name):
        if problem == "no library":
            raise OSError("not found")
        return object() if problem == "no mallopt" else _FakeLibc(accept=0)

    monkeypatch.setattr(ctypes, "CDLL", cdll)
    assert allocator.tune_allocator() is False


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_glibc_accepts_the_defaults(monkeypatch):
    monkeypatch.delenv(allocator.OPT_OUT, raising=False)
    assert allocator.tune_allocator() is True
