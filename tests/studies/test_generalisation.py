import json

import numpy as np
import pytest

from cli_helpers import assert_one_line_error, run_cli
from trustlab.core.batching import Executor, LocalExecutor, use_executor
from trustlab.core.exceptions import InputError
from trustlab.core.stats import seeds_by_examples_draws
from trustlab.data import load_dataset
from trustlab.studies.generalisation import (
    CLEAN,
    DOMAIN,
    MNIST_C,
    REFERENCE,
    GeneralisationResult,
    generalisation_study,
)
from trustlab.studies.recipes import BASELINE, RECIPES, check_recipes


@pytest.fixture(scope="module")
def small_data(reference_data):
    train = load_dataset("mnist", "train", root=reference_data).sample(200, seed=0)
    test = load_dataset("mnist", "test", root=reference_data).sample(300, seed=0)
    domain = load_dataset("digits", "test")
    return train, test, domain


def _study(small_data, cache, **kw):
    options = {
        "recipes": ["dropout"], "seeds": (0, 1), "epochs": 1, "corrupted_examples": 60, "resamples": 100,
        "cache_dir": cache, "show_progress": False,
    }  # fmt: skip
    options.update(kw)
    return generalisation_study(*small_data, **options)


# ----------------------------------------------------------------------------- recipes ----
def test_at_least_twelve_recipes_each_with_distinct_settings_and_the_cli_lists_them_all():
    from trustlab.cli.study import RECIPES as CLI_NAMES

    assert len(RECIPES) >= 12
    assert tuple(r.name for r in RECIPES) == CLI_NAMES
    settings = [json.dumps(r.settings(), sort_keys=True) for r in RECIPES]
    assert len(set(settings)) == len(settings)


def test_recipes_always_include_the_baseline_first_and_refuse_unknown_names():
    chosen = check_recipes(["focal", "rotate"])
    assert [r.name for r in chosen] == [BASELINE, "focal", "rotate"]
    with pytest.raises(InputError, match="unknown recipe 'mixup'") as info:
        check_recipes(["mixup"])
    assert "\n" not in str(info.value)


# ----------------------------------------------------------------------------- bootstrap --
def test_seed_resampling_of_constant_seeds_gives_the_means_of_drawn_seeds():
    matrix = np.stack([np.zeros((1, 50)), np.ones((1, 50))])  # seed 0 always wrong, seed 1 always right
    (draws,) = seeds_by_examples_draws([matrix], resamples=4000, seed=0)
    values, counts = np.unique(draws[:, 0], return_counts=True)
    assert list(values) == [0.0, 0.5, 1.0]
    assert counts / counts.sum() == pytest.approx([0.25, 0.5, 0.25], abs=0.03)


def test_example_resampling_spread_matches_the_binomial_and_pairs_models():
    rng = np.random.default_rng(1)
    scores = (rng.random((1, 1, 2000)) < 0.8).astype(float)
    first, second = seeds_by_examples_draws([scores, scores.copy()], resamples=2000, seed=0)
    assert np.array_equal(first, second)  # same digits drawn for both: a difference of exactly 0
    assert first.std() == pytest.approx(np.sqrt(0.8 * 0.2 / 2000), rel=0.1)
    assert first.mean() == pytest.approx(scores.mean(), abs=0.002)


# ----------------------------------------------------------------------------- the study --
def test_study_runs_caches_resumes_and_reproduces_from_the_seed(small_data, tmp_path):
    first = _study(small_data, tmp_path / "a")
    assert isinstance(first, GeneralisationResult)
    assert (first.trained, first.cached) == (4, 0)
    assert [r.recipe for r in first.rows] == [BASELINE, "dropout"]
    assert first.sets[:3] == (CLEAN, MNIST_C, DOMAIN) and len(first.corruptions) == 15
    assert (first.clean_examples, first.corrupted_examples) == (300, 60)
    base, other = first.rows
    assert base.delta is None and len(other.delta) == len(first.sets)
    for row in first.rows:
        assert all(lo <= a <= hi for lo, a, hi in zip(row.low, row.accuracy, row.high))
    assert Result_round_trip(first)

    again = _study(small_data, tmp_path / "a")
    assert (again.trained, again.cached) == (0, 4)
    assert again.rows == first.rows

    # a scores file lost: the cached model is scored again, nothing is retrained
    next((tmp_path / "a").glob("dropout-seed1-*/scores-*.safetensors")).unlink()
    rescored = _study(small_data, tmp_path / "a")
    assert (rescored.trained, rescored.cached) == (0, 4) and rescored.rows == first.rows

    fresh = _study(small_data, tmp_path / "b")  # trained again from scratch: same seeds, same numbers
    assert fresh.trained == 4 and _figures(fresh) == _figures(first)


def _figures(result):
    """The rows without their training times (wall clock)."""
    from dataclasses import replace

    return [replace(row, train_seconds=0.0) for row in result.rows]


def Result_round_trip(result):
    from trustlab.core.results import Result

    return Result.from_json(result.to_json()) == result


class _Recording(Executor):
    def __init__(self):
        self.shards = []

    def map(self, fn, shards):
        self.shards.extend(shards)
        yield from LocalExecutor().map(fn, list(reversed(shards)))  # out of order on purpose


def test_study_runs_its_tasks_on_the_current_executor(small_data, tmp_path):
    local = _study(small_data, tmp_path / "local", seeds=(0,))
    recording = _Recording()
    with use_executor(recording):
        other = _study(small_data, tmp_path / "other", seeds=(0,))
    assert len(recording.shards) == 2 and _figures(other) == _figures(local)


def test_reference_model_is_scored_beside_the_recipes(small_data, tmp_path):
    from trustlab.models.reference import load_reference_model

    result = _study(small_data, tmp_path, seeds=(0,), reference=load_reference_model())
    row = result.row(REFERENCE)
    assert row.seeds == () and row.delta is not None
    assert row.accuracy[0] > 0.9  # the shipped model reads clean digits well


def test_bad_study_options_are_one_line_errors(small_data, tmp_path):
    for kw, needle in (({"seeds": ()}, "seeds"), ({"seeds": (0, 0)}, "differ"), ({"epochs": 0}, "epochs")):
        with pytest.raises(InputError, match=needle) as info:
            _study(small_data, tmp_path, **kw)
        assert "\n" not in str(info.value)


def test_section_figure_and_summary_render(small_data, tmp_path):
    from trustlab.capabilities import load_views
    from trustlab.core.views import view_for

    load_views()
    result = _study(small_data, tmp_path, seeds=(0,))
    view = view_for(result.kind)
    section = view.section("generalisation", result)
    assert section.tables[0].header[0] == "recipe" and len(section.tables[0].rows) == 2
    assert section.figures[0].png.startswith(b"\x89PNG")
    assert any(line.startswith("dropout:") for line in view.summary(result))


# ----------------------------------------------------------------------------- the CLI ----
def test_cli_lists_recipes(capsys):
    code, out, _ = run_cli(capsys, "study", "generalisation", "--list")
    assert code == 0 and len(out.strip().splitlines()) == len(RECIPES) and out.startswith("baseline")


def test_cli_unknown_recipe_is_a_one_line_error(capsys):
    code, _, err = run_cli(capsys, "study", "generalisation", "--recipe", "mixup")
    assert code == 2 and "mixup" in err and "Traceback" not in err


def test_cli_runs_a_small_study_and_writes_the_report(capsys, tmp_path, reference_data):
    args = [
        "study", "generalisation", "--recipe", "baseline", "--seeds", "1", "--epochs", "1", "--train-examples", "100",
        "--corrupted-examples", "30", "--resamples", "50", "--cache-dir", tmp_path / "cache",
        "--out", tmp_path / "run", "--data-dir", reference_data,
    ]  # fmt: skip
    code, out, err = run_cli(capsys, *args)
    assert code == 0, err
    assert "baseline: clean" in out and "reference: clean" in out
    assert (tmp_path / "run" / "report.html").is_file()
    code, out, _ = run_cli(capsys, *args)  # again: everything from the cache
    assert code == 0 and "0 models trained, 1 from the cache" in out


def test_cli_bad_seed_count_is_a_one_line_error(capsys):
    code, _, err = run_cli(capsys, "study", "generalisation", "--seeds", "0")
    assert_one_line_error(code, err, "--seeds")
