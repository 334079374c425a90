"""The scorecard: verdicts against a policy, the policy file, JSON and JUnit output."""

import xml.etree.ElementTree as ET

import pytest

from trustlab.audit.scorecard import Gate, Scorecard, junit_xml, load_policy, verdict
from trustlab.core.exceptions import InputError
from trustlab.core.results import Result
from trustlab.core.views import Score


def _score(value, higher=True):
    return Score("accuracy", "accuracy", "accuracy", value, "share", higher)


@pytest.mark.parametrize(
    ("value", "higher", "expected"),
    [
        (0.97, True, "green"),
        (0.95, True, "green"),  # the threshold itself is green
        (0.90, True, "amber"),
        (0.79, True, "red"),
        (0.80, True, "amber"),  # red is strictly below
        (0.05, False, "green"),
        (0.09, False, "amber"),
        (0.11, False, "red"),
        (None, True, "n/a"),
        (float("nan"), True, "n/a"),
    ],
)
def test_verdicts_by_hand(value, higher, expected):
    thresholds = {"green": 0.95, "red": 0.80} if higher else {"green": 0.075, "red": 0.10}
    assert verdict(_score(value, higher), thresholds) == expected


def test_no_policy_entry_means_no_verdict_and_one_sided_policies_work():
    assert verdict(_score(0.5), None) == "n/a"
    assert verdict(_score(0.5), {"red": 0.6}) == "red" and verdict(_score(0.7), {"red": 0.6}) == "amber"
    assert verdict(_score(0.7), {"green": 0.6}) == "green"


def test_default_policy_covers_every_score_key_the_views_give():
    policy, name = load_policy()
    assert name == "trustlab default policy"
    assert {"accuracy", "robustness.median_eps", "alarm.worst_auroc", "alarm.false_alarms"} <= set(policy)
    for key, entry in policy.items():
        assert set(entry) == {"green", "red"}, key


def test_bad_policies_are_one_line_errors(tmp_path):
    cases = {
        "broken.toml": ("[accuracy\ngreen = 1", "not valid TOML"),
        "keys.toml": ("[accuracy]\nyellow = 0.5", "green and/or red thresholds only"),
        "value.toml": ('[accuracy]\ngreen = "high"', "must be a finite number"),
    }
    for file, (text, message) in cases.items():
        (tmp_path / file).write_text(text)
        with pytest.raises(InputError, match=message):
            load_policy(tmp_path / file)
    with pytest.raises(InputError, match="does not exist"):
        load_policy(tmp_path / "missing.toml")
    (tmp_path / "ok.toml").write_text("[accuracy]\ngreen = 0.99\n")
    assert load_policy(tmp_path / "ok.toml")[0] == {"accuracy": {"green": 0.99}}


def _gate(name, value, verdict_):
    return Gate("accuracy", "accuracy", name, value, "share", True, None, f"{name} <said>", 0.9, 0.8, verdict_, "r")


def test_junit_has_one_case_per_gate_red_fails_and_missing_axes_skip():
    card = Scorecard(
        gates=(_gate("a", 0.95, "green"), _gate("b & c", 0.5, "red"), _gate("d", 0.85, "amber")),
        axes=("accuracy", "backdoor"),
        skipped={"backdoor": "no backdoor scan yet"},
        policy="test",
    )
    suite = ET.fromstring(junit_xml(card))
    cases = suite.findall("testcase")
    assert suite.get("tests") == "4" and suite.get("failures") == "1" and suite.get("skipped") == "1"
    assert [c.get("name") for c in cases] == ["a", "b & c", "d", "backdoor"]  # escaped and parsed back
    assert cases[1].find("failure") is not None and cases[0].find("failure") is None
    assert cases[3].find("skipped").get("message") == "no backdoor scan yet"
    assert card.worst() == "red" and [g.name for g in card.failed] == ["b & c"]
    assert Result.from_json(card.to_json()) == card
