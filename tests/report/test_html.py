import base64
import re

import torch

from trustlab.models.evaluation import accuracy_from_predictions, model_card
from trustlab.report.html import render_report, write_report
from trustlab.report.run import RunDirectory


def test_report_has_model_card_and_accuracy_section_with_embedded_figures(tmp_path, tiny_cnn):
    run = RunDirectory(tmp_path / "run")
    run.add("model_card", model_card(tiny_cnn, name="tiny"))
    y = torch.arange(10).repeat(3)
    run.add(
        "accuracy-x", accuracy_from_predictions(y, y.roll(1), tiny_cnn.class_names, dataset="mnist", split="sample")
    )
    html = write_report(tmp_path / "run").read_text()
    assert "<h2>Model card</h2>" in html and "<h2>Accuracy (mnist/sample)</h2>" in html
    assert "Accuracy per class" in html and "Most-confused pairs" in html
    assert "0.00%</b> of 30 examples" in html
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    assert len(images) == 2 and all(base64.b64decode(i).startswith(b"\x89PNG") for i in images)
    assert "http://" not in html and "https://" not in html  # self-contained
    assert sorted(p.name for p in (tmp_path / "run" / "figures").iterdir()) == [
        "accuracy-x-confusion.png",
        "accuracy-x-per-class.png",
    ]


def test_user_strings_are_escaped(tiny_cnn):
    y = torch.tensor([0, 1])
    names = ("<script>alert(1)</script>", "b")
    html, _ = render_report({"acc": accuracy_from_predictions(y, y, names, dataset="<i>d</i>", split="s")})
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html
    assert "<i>d</i>" not in html


def test_identical_results_give_identical_reports(tiny_cnn):
    y = torch.tensor([0, 1, 2])
    results = {"acc": accuracy_from_predictions(y, y, tiny_cnn.class_names)}
    assert render_report(results) == render_report(results)
