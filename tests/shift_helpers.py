"""The numbers check of the shift audit's report section, shared with the report's views test."""

from __future__ import annotations

from trustlab.core import format as fmt
from trustlab.shift.results import ShiftResult


def check_shift_section(section, result: ShiftResult) -> None:
    """The section shows the result's own figures (the numbers check of the report's views test)."""
    from trustlab.shift.views import points, points_interval, times

    (table,) = section.tables
    assert [r[0] for r in table.rows] == [r.corruption for r in result.rows]
    assert [r[2] for r in table.rows] == [
        f"{fmt.pct(r.accuracy)} ({fmt.pct_interval(r.interval)})" for r in result.rows
    ]
    assert [r[3] for r in table.rows] == [fmt.pct(r.error) for r in result.rows]
    assert [r[4] for r in table.rows] == [times(result.relative_error(r)) for r in result.rows]
    assert [r[5] for r in table.rows] == [fmt.pct(r.baseline_error) for r in result.rows]
    assert [r[6] for r in table.rows] == [fmt.pct(result.corruption_error(r)) for r in result.rows]
    assert [r[7] for r in table.rows[1:]] == [fmt.pct(result.relative_corruption_error(r)) for r in result.corrupted]
    assert [r[8] for r in table.rows] == [fmt.pct(r.ece) for r in result.rows]
    assert [r[9] for r in table.rows] == [fmt.pct(r.alarm_rate) for r in result.rows]
    headline = str(section.paragraphs[0])
    assert (
        f"a drop of {points(result.accuracy_drop)} points (95% CI {points_interval(result.drop_interval)})" in headline
    )
    assert f"worst: {result.worst.corruption} at {fmt.pct(result.worst.accuracy)}" in headline
    assert f"mean of {fmt.pct(result.mean_accuracy)}" in headline
    if result.has_baseline:
        assert f"<b>{fmt.pct(result.mce)}</b> (95% CI {fmt.pct_interval(result.mce_interval)})" in section.paragraphs[1]
        assert f"relative mCE <b>{fmt.pct(result.relative_mce)}</b>" in section.paragraphs[1]
    assert f"{fmt.pct(result.mean_ece)} on average under corruption" in section.paragraphs[2]
    if result.has_alarm:
        assert (
            f"{fmt.pct(result.clean.alarm_rate)} of the clean digits, {fmt.pct(result.mean_alarm_rate)}"
            in (section.paragraphs[3])
        )
        assert f"flags {fmt.pct(result.errors_caught)}" in section.paragraphs[3]
    assert dict(section.facts)["digits per set"] == f"{result.examples:,}"
    assert len(section.figures) == 2 and all(f.png.startswith(b"\x89PNG") for f in section.figures)
