"""The robust-vs-natural study on a few digits."""

import pytest

import trustlab.studies.views  # noqa: F401  (registers the sections)
from trustlab.core.results import Result
from trustlab.core.views import render_sections
from trustlab.data import load_dataset
from trustlab.models import load_reference_model
from trustlab.robustness.attacks import PGD
from trustlab.studies.robust_vs_natural import METRICS, robust_vs_natural


@pytest.fixture(autouse=True)
def _threads(one_thread):
    pass


def test_four_cells_with_intervals_and_a_report_section():
    data = load_dataset("mnist", "sample").subset(slice(0, 40))
    result = robust_vs_natural(
        load_reference_model(), load_reference_model("mnist_cnn_robust"), data.x, data.y,
        attack=PGD(steps=5), eps=0.2, bootstrap=200, gallery=2,
    )  # fmt: skip
    assert set(result.means) == set(METRICS)
    for metric in METRICS:
        for model in ("natural", "robust"):
            for kind in ("clean", "adversarial"):
                low, high = result.intervals[metric][model][kind]
                assert low <= result.means[metric][model][kind] <= high
    # PGD at 0.2 breaks the natural model far more than the robust one
    assert result.accuracy["natural"]["adversarial"] < result.accuracy["robust"]["adversarial"]
    assert Result.from_json(result.to_json()) == result
    (section,) = render_sections({"study": result})
    assert section.figures[0].png.startswith(b"\x89PNG")
    # the table shows the result's own means and intervals, cell by cell
    rows = {row[0]: row[1:] for row in section.tables[0].rows}
    for metric, description in result.metric_descriptions.items():
        expected = []
        for model in result.models:
            for kind in result.inputs:
                low, high = result.intervals[metric][model][kind]
                expected.append(f"{result.means[metric][model][kind]:.3f} ({low:.3f}-{high:.3f})")
        assert rows[description] == expected
