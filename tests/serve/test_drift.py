"""The drift test: exact one-sided binomial p-values, checked against sums written out by hand."""

import math

import pytest

from trustlab.core.exceptions import InputError
from trustlab.serve.drift import DriftMonitor, binomial_p_value


def tail(k: int, n: int, p: float) -> float:
    """P(X >= k), X ~ Binomial(n, p), summed term by term."""
    return sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k, n + 1))


def test_p_value_is_the_upper_binomial_tail():
    # 5 alarms in 10 at alpha 0.1: 252e-5 * 0.9^5 + 210e-6 * 0.9^4 + 120e-7 * 0.9^3 + ... = 0.0016349
    assert binomial_p_value(5, 10, 0.1) == pytest.approx(0.00163494, rel=1e-4)
    # 2 alarms in 10: 1 - 0.9^10 - 10 * 0.1 * 0.9^9 = 0.26390
    assert binomial_p_value(2, 10, 0.1) == pytest.approx(1 - 0.9**10 - 0.9**9, rel=1e-9)
    for k, n, p in [(0, 10, 0.1), (1, 1, 0.5), (30, 1000, 0.02), (60, 1000, 0.05), (1000, 1000, 0.05)]:
        assert binomial_p_value(k, n, p) == pytest.approx(tail(k, n, p), rel=1e-9, abs=1e-300)


def test_monitor_fires_on_a_full_window_only_and_clears():
    monitor = DriftMonitor(window=10, alpha=0.1, level=0.01)
    status, changed = monitor.update([True] * 9)
    assert not status.drifting and not changed and status.n == 9  # window not yet full
    status, changed = monitor.update([True])
    assert status.drifting and changed and status.alarms == 10 and status.p_value == pytest.approx(1e-10)
    assert status.since is not None
    status, changed = monitor.update([False] * 5)  # 5 alarms in the window: p = 0.0016 <= 0.01
    assert status.drifting and not changed and status.alarms == 5 and status.rate == 0.5
    assert status.p_value == pytest.approx(tail(5, 10, 0.1), rel=1e-9)
    status, changed = monitor.update([False] * 4)  # 1 alarm in 10: p = 0.65
    assert not status.drifting and changed and status.alarms == 1 and status.since is None
    assert status.p_value == pytest.approx(tail(1, 10, 0.1), rel=1e-9)


def test_monitor_keeps_only_the_last_window():
    monitor = DriftMonitor(window=4, alpha=0.25, level=0.05)
    status, _ = monitor.update([True, True, True, True, False, False, False, True, False])
    assert (status.n, status.alarms) == (4, 1)  # the last four flags: F F T F
    assert status.to_dict()["window"] == 4


def test_rate_at_alpha_is_no_drift_and_twice_alpha_is():
    monitor = DriftMonitor(window=1000, alpha=0.05, level=0.001)
    status, _ = monitor.update([i % 20 == 0 for i in range(1000)])  # 50 alarms: the promised rate
    assert status.rate == 0.05 and status.p_value > 0.4 and not status.drifting
    status, changed = monitor.update([i % 10 == 0 for i in range(1000)])  # 100 alarms: twice as many
    assert status.rate == 0.1 and status.p_value < 1e-9 and status.drifting and changed


def test_monitor_refuses_bad_settings():
    with pytest.raises(InputError, match="window"):
        DriftMonitor(window=0, alpha=0.1, level=0.01)
    with pytest.raises(InputError, match="alpha and level"):
        DriftMonitor(window=5, alpha=1.0, level=0.01)
