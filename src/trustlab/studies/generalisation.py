"""Which training choices help a digit classifier generalise: the recipe study.

Every recipe of :mod:`trustlab.studies.recipes` is trained with several seeds on the same training
data and each trained model is scored, example by example, on three kinds of test data:

* ``clean``: the test split as it is;
* the 15 MNIST-C corruptions (:mod:`trustlab.data.mnist_c`, seeded) of a seeded sample of the test
  split (``corrupted_examples`` digits, the same digits for every corruption and every model);
* ``digits``: the second domain, scikit-learn's 8 x 8 digits upsampled to 28 x 28
  (:func:`trustlab.shift.domain.upsample_digits`), zero-shot.

Intervals: percentile bootstrap over seeds and examples (:func:`trustlab.core.stats.seeds_by_examples_draws`):
each resample draws test digits (the same for every recipe, so differences are paired on the
digits) and each recipe's seeds, so an interval covers both the run-to-run variation and the finite
test set. A difference to the baseline is called *within noise* when its interval holds 0.

Work: each (recipe, seed) is one task, trained and scored on the current executor
(:func:`trustlab.core.batching.current_executor`, local or Ray); the driver caches each trained model
(a safetensors artefact) and its scores in ``cache_dir`` under a key of everything that changes them,
so an interrupted study resumes where it stopped and a repeated one trains nothing. Training is
deterministic given the seed (CPU, fixed threads), so a study is reproducible from its seeds.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trustlab.core.batching import Shard, current_executor
from trustlab.core.exceptions import InputError
from trustlab.core.files import atomic_write_bytes, atomic_write_json
from trustlab.core.progress import progress
from trustlab.core.results import Record, Result
from trustlab.core.stats import percentile_interval, seeds_by_examples_draws
from trustlab.core.validate import positive_int
from trustlab.data.mnist_c import NAMES as CORRUPTIONS
from trustlab.data.mnist_c import mnist_c_set
from trustlab.models.classifier import Classifier
from trustlab.studies.recipes import ARCHITECTURE, BASELINE, Recipe, check_recipes

CLEAN, MNIST_C, DOMAIN = "clean", "MNIST-C mean", "digits (zero-shot)"
SUMMARY_SETS = (CLEAN, MNIST_C, DOMAIN)
REFERENCE = "reference"
DEFAULT_SEEDS = (0, 1, 2)
DEFAULT_EPOCHS = 10
DEFAULT_BATCH = 64
DEFAULT_CORRUPTED = 2000
DEFAULT_RESAMPLES = 1000
CACHE_FORMAT = 1


def default_study_cache() -> Path:
    """``$XDG_CACHE_HOME/trustlab/studies/generalisation`` (default under ``~/.cache``)."""
    from trustlab.data.paths import default_cache_dir

    return default_cache_dir().parent / "studies" / "generalisation"


# ------------------------------------------------------------------ the test data -------------
@dataclass(frozen=True)
class EvaluationSets:
    """What every model is scored on: clean test digits, their MNIST-C corruptions (8-bit, one
    (N, 1, 28, 28) block per corruption) and the second domain; ``fingerprint`` names them all."""

    clean_x: torch.Tensor
    clean_y: torch.Tensor
    corrupted_x: torch.Tensor  # (corruptions, N, 1, 28, 28) uint8
    corrupted_y: torch.Tensor
    domain_x: torch.Tensor
    domain_y: torch.Tensor
    fingerprint: str


def _digest(*tensors: torch.Tensor) -> str:
    digest = hashlib.sha256()
    for t in tensors:
        digest.update(t.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def evaluation_sets(
    test: Any,
    domain_test: Any,
    *,
    corrupted_examples: int | None = DEFAULT_CORRUPTED,
    seed: int = 0,
    cache: bool = True,
    cache_dir: str | os.PathLike | None = None,
    show_progress: bool = True,
) -> EvaluationSets:
    """The study's test data from the MNIST ``test`` split and the 8 x 8 ``digits`` test split (see the
    module docstring); the corrupted digits are a ``seed``-ed sample of ``corrupted_examples`` (None:
    all) test digits, corrupted with ``seed`` and cached as :func:`~trustlab.data.mnist_c.mnist_c_set` does."""
    from trustlab.shift.domain import upsample_digits

    sample = test if corrupted_examples is None else test.sample(corrupted_examples, seed=seed)
    corrupted = mnist_c_set(
        sample.x.cpu(), sample.y.cpu(), seed=seed, cache=cache, cache_dir=cache_dir, show_progress=show_progress
    )
    blocks = torch.stack([torch.round(corrupted.images[name] * 255.0).to(torch.uint8) for name in CORRUPTIONS])
    domain = upsample_digits(domain_test)
    key = {"test": _digest(test.x, test.y), "mnist_c": corrupted.fingerprint, "domain": _digest(domain.x, domain.y)}
    return EvaluationSets(
        clean_x=test.x,
        clean_y=test.y,
        corrupted_x=blocks,
        corrupted_y=sample.y,
        domain_x=domain.x,
        domain_y=domain.y,
        fingerprint=hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest(),
    )


def score_model(classifier: Classifier, sets: EvaluationSets) -> dict[str, torch.Tensor]:
    """Per-example correctness (uint8 0/1) of ``classifier`` on the clean digits (N,), each corruption
    (corruptions, M) and the second domain (K,)."""

    def correct(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (classifier.predict(x).cpu() == y.cpu()).to(torch.uint8)

    corrupted = torch.stack([correct(block.to(torch.float32) / 255.0, sets.corrupted_y) for block in sets.corrupted_x])
    return {
        "clean": correct(sets.clean_x, sets.clean_y),
        "corrupted": corrupted,
        "domain": correct(sets.domain_x, sets.domain_y),
    }


# ------------------------------------------------------------------ one task ------------------
def new_classifier(recipe: Recipe, train: Any, seed: int) -> Classifier:
    """The untrained reference CNN ``recipe`` trains, its initial weights drawn with ``seed``."""
    from trustlab.models.training import classifier_for

    return classifier_for(train, arch=ARCHITECTURE, seed=seed, options=recipe.architecture_options())


def train_and_score(
    tasks: Sequence[tuple[Recipe, int]], train: Any, sets: EvaluationSets, epochs: int, batch_size: int,
    start: int, stop: int,
) -> dict[str, torch.Tensor]:  # fmt: skip
    """Shard function (see :mod:`trustlab.core.batching`): train task ``start`` (``stop = start + 1``)
    and score it; its outputs carry the scores, the training time and loss, and the weights
    (``weight:<name>``), each with a leading dimension of 1."""
    if stop != start + 1:
        raise ValueError("the recipe study runs one task per shard")
    from trustlab.models.training import train as fit

    recipe, seed = tasks[start]
    classifier = new_classifier(recipe, train, seed)
    history = fit(
        classifier, train.x, train.y, epochs=epochs, batch_size=batch_size, seed=seed, show_progress=False,
        dataset_name=f"{train.name}/{train.split}", **recipe.training_options(),
    )  # fmt: skip
    out = {key: value[None] for key, value in score_model(classifier, sets).items()}
    out["seconds"] = torch.tensor([history.seconds], dtype=torch.float64)
    out["final_loss"] = torch.tensor([history.loss[-1]], dtype=torch.float64)
    for key, value in classifier.module.state_dict().items():
        out[f"weight:{key}"] = value.detach().cpu()[None]
    return out


# ------------------------------------------------------------------ the cache -----------------
def model_key(recipe: Recipe, seed: int, train_digest: str, epochs: int, batch_size: int) -> str:
    """Digest of everything that changes a trained model: the recipe's settings, the seed, the
    schedule, the training data (``train_digest``, its images' and labels' sha256) and the torch version."""
    key = {
        "format": CACHE_FORMAT,
        "architecture": ARCHITECTURE,
        "recipe": recipe.settings(),
        "seed": seed,
        "epochs": epochs,
        "batch_size": batch_size,
        "train": train_digest,
        "torch": torch.__version__.split("+")[0],
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()


@dataclass(frozen=True)
class TaskFiles:
    """Where one (recipe, seed)'s model, training record and scores live in the cache."""

    folder: Path
    scores_name: str

    @property
    def model(self) -> Path:
        return self.folder / "model.safetensors"

    @property
    def training(self) -> Path:
        return self.folder / "training.json"

    @property
    def scores(self) -> Path:
        return self.folder / self.scores_name

    def read_scores(self) -> dict[str, torch.Tensor] | None:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        if not (self.scores.is_file() and self.training.is_file()):
            return None
        try:
            scores = load_file(str(self.scores))
            training = json.loads(self.training.read_text())
        except (OSError, SafetensorError, ValueError):
            return None
        scores["seconds"] = torch.tensor(float(training["seconds"]), dtype=torch.float64)
        return scores

    def write_scores(self, scores: dict[str, torch.Tensor]) -> None:
        from safetensors.torch import save

        keep = {k: scores[k].contiguous() for k in ("clean", "corrupted", "domain")}
        atomic_write_bytes(self.scores, save(keep))


def task_files(cache_dir: Path, recipe: Recipe, seed: int, key: str, sets: EvaluationSets) -> TaskFiles:
    """One task's folder (named by recipe, seed and model key) and its scores file (named by the test data)."""
    return TaskFiles(cache_dir / f"{recipe.name}-seed{seed}-{key[:16]}", f"scores-{sets.fingerprint[:16]}.safetensors")


def _store(files: TaskFiles, recipe: Recipe, seed: int, train: Any, outputs: dict[str, torch.Tensor]) -> None:
    """Save a trained task's model (as a trustlab artefact), its training record and its scores."""
    from trustlab.models.artefacts import save_model

    classifier = new_classifier(recipe, train, seed)
    state = {k.split(":", 1)[1]: v[0] for k, v in outputs.items() if k.startswith("weight:")}
    classifier.module.load_state_dict(state)
    classifier.module.eval()
    files.folder.mkdir(parents=True, exist_ok=True)
    save_model(classifier, files.model)
    atomic_write_json(
        files.training,
        {
            "recipe": recipe.name,
            "settings": recipe.settings(),
            "seed": seed,
            "seconds": float(outputs["seconds"][0]),
            "final_loss": float(outputs["final_loss"][0]),
        },
    )
    files.write_scores({k: v[0] for k, v in outputs.items()})


# ------------------------------------------------------------------ the result ----------------
@dataclass(frozen=True)
class RecipeRow(Record):
    """One recipe's accuracy on every set (``GeneralisationResult.sets``: clean, MNIST-C mean,
    digits, then each corruption) with its 95% interval, and its difference to the baseline in
    accuracy points with the paired interval (None for the baseline itself)."""

    kind = "study.generalisation.row"
    recipe: str
    summary: str
    seeds: tuple[int, ...]
    train_seconds: float  # mean over seeds (0 for a model not trained here)
    accuracy: tuple[float, ...]
    low: tuple[float, ...]
    high: tuple[float, ...]
    delta: tuple[float, ...] | None
    delta_low: tuple[float, ...] | None
    delta_high: tuple[float, ...] | None


@dataclass(frozen=True)
class Effect(Record):
    """A recipe's difference to the baseline on one set, in accuracy points, with its interval."""

    kind = "study.generalisation.effect"
    set: str
    points: float
    low: float
    high: float


@dataclass(frozen=True)
class GeneralisationResult(Result):
    """The recipe study: one row per recipe (the baseline first), and how it was run."""

    kind = "study.generalisation"
    sets: tuple[str, ...]
    rows: tuple[RecipeRow, ...]
    baseline: str
    train_examples: int
    clean_examples: int
    corrupted_examples: int
    domain_examples: int
    epochs: int
    batch_size: int
    seed: int  # MNIST-C corruptions, the corrupted sample and the bootstrap
    resamples: int
    trained: int  # models trained by this run (the rest came from the cache)
    cached: int
    executor: str
    seconds: float

    @property
    def corruptions(self) -> tuple[str, ...]:
        return self.sets[len(SUMMARY_SETS) :]

    def row(self, recipe: str) -> RecipeRow:
        for row in self.rows:
            if row.recipe == recipe:
                return row
        raise KeyError(recipe)

    def effects(self, row: RecipeRow) -> tuple[Effect, ...]:
        """The row's difference to the baseline on every set (none for the baseline)."""
        if row.delta is None:
            return ()
        return tuple(Effect(*values) for values in zip(self.sets, row.delta, row.delta_low, row.delta_high))

    def helps(self, row: RecipeRow) -> tuple[Effect, ...]:
        """Sets where the recipe beats the baseline beyond noise (the interval above 0), best first."""
        return tuple(sorted((e for e in self.effects(row) if e.low > 0), key=lambda e: -e.points))

    def hurts(self, row: RecipeRow) -> tuple[Effect, ...]:
        """Sets where the recipe is worse than the baseline beyond noise (the interval below 0), worst first."""
        return tuple(sorted((e for e in self.effects(row) if e.high < 0), key=lambda e: e.points))


# ------------------------------------------------------------------ the study -----------------
def _check_seeds(seeds: Sequence[int]) -> tuple[int, ...]:
    seeds = tuple(seeds)
    if not seeds or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds):
        raise InputError(f"seeds must be one or more integers >= 0, got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise InputError(f"seeds must differ from each other, got {seeds!r}")
    return seeds


def _matrices(scores: Sequence[dict[str, torch.Tensor]]) -> dict[str, np.ndarray]:
    """(seeds, sets, examples) float arrays per kind of test data from one model's per-seed scores."""
    return {
        "clean": np.stack([s["clean"].numpy()[None] for s in scores]).astype(np.float64),
        "corrupted": np.stack([s["corrupted"].numpy() for s in scores]).astype(np.float64),
        "domain": np.stack([s["domain"].numpy()[None] for s in scores]).astype(np.float64),
    }


def _summarise(
    names: Sequence[tuple[str, str, tuple[int, ...], float]], matrices: Sequence[dict[str, np.ndarray]],
    *, resamples: int, seed: int,
) -> list[RecipeRow]:  # fmt: skip
    """One row per model: point accuracies and bootstrap intervals per set, and paired differences to
    the first model (the baseline)."""
    draws = {
        kind: seeds_by_examples_draws([m[kind] for m in matrices], resamples=resamples, seed=seed + offset)
        for offset, kind in enumerate(("clean", "corrupted", "domain"))
    }
    per_model = []
    for k, m in enumerate(matrices):
        corrupted = m["corrupted"].mean(axis=(0, 2))
        point = np.concatenate([[m["clean"].mean(), corrupted.mean(), m["domain"].mean()], corrupted])
        d = np.concatenate(
            [draws["clean"][k], draws["corrupted"][k].mean(axis=1, keepdims=True), draws["domain"][k],
             draws["corrupted"][k]], axis=1,
        )  # fmt: skip
        per_model.append((point, d))
    base_point, base_draws = per_model[0]
    rows = []
    for k, ((name, summary, seeds, seconds), (point, d)) in enumerate(zip(names, per_model)):
        low, high = percentile_interval(d)
        delta = delta_low = delta_high = None
        if k:
            dlow, dhigh = percentile_interval(100.0 * (d - base_draws))
            delta = tuple(float(v) for v in 100.0 * (point - base_point))
            delta_low, delta_high = tuple(float(v) for v in dlow), tuple(float(v) for v in dhigh)
        rows.append(
            RecipeRow(
                name, summary, seeds, seconds, tuple(float(v) for v in point), tuple(float(v) for v in low),
                tuple(float(v) for v in high), delta, delta_low, delta_high,
            )
        )  # fmt: skip
    return rows


def generalisation_study(
    train: Any,
    test: Any,
    domain_test: Any,
    *,
    recipes: Sequence[str] | None = None,
    seeds: Sequence[int] = DEFAULT_SEEDS,
    epochs: int = DEFAULT_EPOCHS,
    batch_size: int = DEFAULT_BATCH,
    corrupted_examples: int | None = DEFAULT_CORRUPTED,
    reference: Classifier | None = None,
    reference_summary: str = "the shipped reference CNN",
    seed: int = 0,
    resamples: int = DEFAULT_RESAMPLES,
    cache_dir: str | os.PathLike | None = None,
    show_progress: bool = True,
) -> GeneralisationResult:
    """Train every recipe (default: all; the baseline always) with every seed on ``train`` (MNIST
    images), score each model on ``test`` (clean and its MNIST-C corruptions) and on the ``domain_test``
    digits, and summarise with intervals (see the module docstring). ``reference``: a trained model
    scored beside the recipes (its interval covers the examples only). ``cache_dir``: default
    :func:`default_study_cache`."""
    began = time.perf_counter()
    chosen = check_recipes(recipes)
    seeds = _check_seeds(seeds)
    epochs = positive_int(epochs, "epochs")
    batch_size = positive_int(batch_size, "batch_size")
    resamples = positive_int(resamples, "resamples")
    if corrupted_examples is not None:
        corrupted_examples = positive_int(corrupted_examples, "corrupted_examples")
    if train.kind != "image" or tuple(train.input_shape) != (1, 28, 28) or tuple(test.input_shape) != (1, 28, 28):
        raise InputError("the recipe study trains on MNIST-like digits (1 x 28 x 28); got other data")
    cache = Path(cache_dir if cache_dir is not None else default_study_cache()).expanduser()
    sets = evaluation_sets(
        test, domain_test, corrupted_examples=corrupted_examples, seed=seed, show_progress=show_progress
    )
    tasks = [(recipe, s) for recipe in chosen for s in seeds]
    train_digest = _digest(train.x, train.y)  # once, not per task
    files = [task_files(cache, r, s, model_key(r, s, train_digest, epochs, batch_size), sets) for r, s in tasks]
    scores: dict[int, dict[str, torch.Tensor]] = {}
    pending: list[Shard] = []
    for index, where in enumerate(files):
        stored = where.read_scores()
        if stored is None and where.model.is_file() and where.training.is_file():
            stored = _rescore(where, sets)
        if stored is not None:
            scores[index] = stored
        else:
            pending.append(Shard(index, index, index + 1))
    executor = current_executor()
    fn = functools.partial(train_and_score, tasks, train, sets, epochs, batch_size)
    bar = progress(None, total=len(pending), desc="recipe study", unit="model", enabled=show_progress and bool(pending))
    try:
        for index, outputs in executor.map(fn, pending):
            recipe, s = tasks[index]
            _store(files[index], recipe, s, train, outputs)
            scores[index] = {k: v[0] for k, v in outputs.items() if k in ("clean", "corrupted", "domain", "seconds")}
            bar.update(1)
            bar.set_postfix(last=f"{recipe.name}/{s}")
    finally:
        bar.close()

    names, matrices = [], []
    for recipe in chosen:
        per_seed = [scores[i] for i, (r, _) in enumerate(tasks) if r is recipe]
        seconds = float(np.mean([float(p["seconds"]) for p in per_seed]))
        names.append((recipe.name, recipe.summary, seeds, seconds))
        matrices.append(_matrices(per_seed))
    if reference is not None:
        names.append((REFERENCE, reference_summary, (), 0.0))
        matrices.append(_matrices([score_model(reference, sets)]))
    rows = _summarise(names, matrices, resamples=resamples, seed=seed)
    return GeneralisationResult(
        sets=(*SUMMARY_SETS, *CORRUPTIONS),
        rows=tuple(rows),
        baseline=BASELINE,
        train_examples=len(train),
        clean_examples=int(sets.clean_y.shape[0]),
        corrupted_examples=int(sets.corrupted_y.shape[0]),
        domain_examples=int(sets.domain_y.shape[0]),
        epochs=epochs,
        batch_size=batch_size,
        seed=seed,
        resamples=resamples,
        trained=len(pending),
        cached=len(tasks) - len(pending),
        executor=repr(executor),
        seconds=time.perf_counter() - began,
    )


def _rescore(files: TaskFiles, sets: EvaluationSets) -> dict[str, torch.Tensor] | None:
    """A cached model scored on test data it was not scored on before (e.g. another sample size)."""
    from trustlab.core.exceptions import TrustlabError
    from trustlab.models.artefacts import load_model

    try:
        classifier = load_model(files.model)
    except TrustlabError:
        return None
    scores = score_model(classifier, sets)
    files.write_scores(scores)
    return files.read_scores()
