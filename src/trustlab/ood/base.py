"""The detector contract, its registry and its one-file artefact.

A detector learns what in-distribution inputs look like (``fit``) and gives every new input one
score, **higher = more out-of-distribution** (``score``). Scoring is batched, gradient-free and
bounded by ``batch_size``; inputs are validated like a classifier's (shape, NaN, bounds).

Artefact: one safetensors file, the learned tensors plus JSON metadata (detector name, config,
input shape and bounds). No pickles. Post-hoc detectors read a classifier, which is not stored
in a detector file (a :class:`~trustlab.ood.guard.GuardedClassifier` stores both).
"""

from __future__ import annotations

import abc
import copy
import json
import os
from pathlib import Path
from typing import Any, ClassVar

import torch
from safetensors.torch import save as safetensors_save

from trustlab.core.batching import run_batches
from trustlab.core.exceptions import InputError, ModelLoadError, NotFittedError, UnknownNameError
from trustlab.core.files import atomic_write_bytes
from trustlab.core.validate import as_tensor, class_indices, positive_int, validate_inputs
from trustlab.models.artefacts import read_safetensors
from trustlab.models.classifier import Classifier
from trustlab.models.probe import feature_layer, find_module, hookable

FORMAT = "trustlab-detector/1"
ERR_NOT_FITTED = "{name} detector is not fitted; call fit(in_distribution_data) first"

_DETECTORS: dict[str, type[Detector]] = {}


def _unpack(data: Any, y: Any) -> tuple[Any, Any]:
    """Accept a trustlab Dataset (x and labels) or an array of inputs (labels optional)."""
    if hasattr(data, "x") and hasattr(data, "y"):
        return data.x, data.y if y is None else y
    return data, y


class Detector(abc.ABC):
    """Base of every OOD detector. Subclasses set ``name``, implement ``_fit`` and ``_score_batch``
    and list their JSON-able constructor arguments in ``config()``."""

    name: ClassVar[str] = ""
    needs_classifier: ClassVar[bool] = False
    score_label: ClassVar[str] = "score"  # what the number is, for tables and axis labels

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("name"):
            _DETECTORS[cls.name] = cls

    def __init__(self, *, batch_size: int = 256) -> None:
        self.batch_size = positive_int(batch_size, "batch_size")
        self.input_shape_: tuple[int, ...] | None = None
        self.bounds_: tuple[float, float] | None = None

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"

    # ------------------------------------------------------------------ contract ---------------
    def config(self) -> dict[str, Any]:
        """Constructor arguments (JSON-able) that rebuild this detector before its state is loaded."""
        return {"batch_size": self.batch_size}

    @abc.abstractmethod
    def state(self) -> dict[str, torch.Tensor]:
        """Learned tensors (what ``fit`` computed)."""

    @abc.abstractmethod
    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        """Restore what ``state`` returned (the detector is already built from its config)."""

    @abc.abstractmethod
    def _fit(self, x: torch.Tensor, y: torch.Tensor | None) -> None:
        """Learn from validated in-distribution inputs (and labels, when given)."""

    @abc.abstractmethod
    def _score_batch(self, x: torch.Tensor) -> torch.Tensor:
        """Scores of one validated batch, under ``torch.no_grad``."""

    # ------------------------------------------------------------------ public -----------------
    @property
    def fitted(self) -> bool:
        return self.input_shape_ is not None

    def _input_spec(self, x: torch.Tensor) -> tuple[tuple[int, ...], tuple[float, float] | None]:
        """Shape and bounds new inputs must have; learned from the fitting data by default."""
        return tuple(x.shape[1:]), (0.0, 1.0) if x.ndim == 4 else None

    def fit(self, data: Any, y: Any = None) -> Detector:
        """Learn the in-distribution from ``data`` (a Dataset or an array of inputs); returns self."""
        x, y = _unpack(data, y)
        x = as_tensor(x, "training inputs")
        if x.ndim == 0 or x.shape[0] < 2:
            raise InputError(f"fit needs a batch of at least 2 in-distribution examples, got shape {tuple(x.shape)}")
        shape, bounds = self._input_spec(x)
        x = validate_inputs(x, shape, bounds, name="training inputs")
        if y is not None:
            y = class_indices(y, x.shape[0], self._label_classes())
        self._fit(x, y)
        self.input_shape_, self.bounds_ = shape, bounds
        return self

    def _label_classes(self) -> int:
        """How many classes fitting labels may name (any non-negative index unless a classifier says)."""
        return torch.iinfo(torch.int64).max

    def validate(self, x: Any) -> torch.Tensor:
        if not self.fitted:
            raise NotFittedError(ERR_NOT_FITTED.format(name=self.name))
        return validate_inputs(x, self.input_shape_, self.bounds_)

    def score(self, x: Any) -> torch.Tensor:
        """One float64 score per input (higher = more out-of-distribution), ``batch_size`` at a time,
        through ``run_batches`` (so ``--backend ray`` scores the batches on Ray workers)."""
        x = self.validate(x)

        def batch(start: int, stop: int) -> dict[str, torch.Tensor]:
            with torch.no_grad():
                return {"score": self._score_batch(x[start:stop]).detach().double().cpu()}

        out = run_batches(batch, x.shape[0], self.batch_size, desc="scoring", show_progress=False)
        return out.get("score", torch.empty(0, dtype=torch.float64))

    def set_fitted(self, input_shape: tuple[int, ...], bounds: tuple[float, float] | None) -> None:
        self.input_shape_ = tuple(int(s) for s in input_shape)
        self.bounds_ = None if bounds is None else (float(bounds[0]), float(bounds[1]))


def require_positive_ints(**values: Any) -> None:
    """One-line error naming the first option that is not a positive integer."""
    for label, value in values.items():
        positive_int(value, label)


class MultiScoreDetector(Detector):
    """A detector whose learned model can be scored several ways: ``scores`` maps each way's
    name to what the number is. ``rescored`` shares the trained model."""

    scores: ClassVar[dict[str, str]] = {}

    def __init__(self, *, score: str, batch_size: int = 256) -> None:
        super().__init__(batch_size=batch_size)
        self.score_kind = self._checked(score)

    def _checked(self, score: str) -> str:
        if score not in self.scores:
            raise InputError(f"score must be one of {', '.join(self.scores)}, got {score!r}")
        return score

    @property
    def score_label(self) -> str:  # type: ignore[override]
        return self.scores[self.score_kind]

    def config(self) -> dict[str, Any]:
        return {**super().config(), "score": self.score_kind}

    def rescored(self, score: str) -> MultiScoreDetector:
        """The same trained model scored another way (shares the weights)."""
        other = copy.copy(self)
        other.score_kind = self._checked(score)
        return other


class PosthocDetector(Detector):
    """A detector that reads a classifier's outputs (logits and penultimate features).

    Features are the input of ``layer``, a module name (from ``named_modules``); by default
    :func:`~trustlab.models.probe.feature_layer`, found by running the model once: the module
    mapping the feature vector to the logits (for most models the last linear layer), so
    features are the penultimate activations whatever the model's format. One forward pass gives
    logits and features, which is how a guarded classifier scores an input at almost no extra
    cost. A compiled TorchScript module is read through its Python mirror (same weights).
    """

    needs_classifier = True
    uses_features: ClassVar[bool] = False

    def __init__(self, classifier: Classifier, *, layer: str | None = None, batch_size: int = 256) -> None:
        super().__init__(batch_size=batch_size)
        if not isinstance(classifier, Classifier):
            raise InputError(f"classifier must be a trustlab Classifier, got {type(classifier).__name__}")
        if layer is not None and not isinstance(layer, str):
            raise InputError(f"layer must be a module name (a string from named_modules), got {type(layer).__name__}")
        self.classifier = classifier
        self.layer = layer
        self._reader: tuple[Classifier, torch.nn.Module] | None = None

    def config(self) -> dict[str, Any]:
        return {**super().config(), "layer": self.layer}

    def _input_spec(self, x: torch.Tensor) -> tuple[tuple[int, ...], tuple[float, float] | None]:
        return self.classifier.input_shape, self.classifier.bounds

    def _label_classes(self) -> int:
        return self.classifier.num_classes

    def _feature_reader(self) -> tuple[Classifier, torch.nn.Module]:
        """The classifier to run (``self.classifier``, or its hookable mirror) and the module whose
        input is the feature vector; the default layer is probed once and kept in ``layer``."""
        if self._reader is None:
            try:
                runnable = hookable(self.classifier)
                if self.layer is None:
                    self.layer = feature_layer(runnable)
            except InputError as exc:
                raise InputError(f"the {self.name} detector needs penultimate features: {exc}") from None
            self._reader = (runnable, find_module(runnable, self.layer))
        return self._reader

    def outputs(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits and (if this detector uses them) flattened features of one validated batch."""
        x = x.to(self.classifier.device)
        if not self.uses_features:
            return self.classifier.forward(x), None
        runnable, module = self._feature_reader()
        captured: list[torch.Tensor] = []
        hook = module.register_forward_pre_hook(lambda _m, args: captured.append(args[0]))
        try:
            logits = runnable.forward(x)
        finally:
            hook.remove()
        if not captured:
            raise InputError(f"layer {self.layer!r} is not called when the model runs; pass another layer=")
        return logits, captured[-1].flatten(1).float()

    @abc.abstractmethod
    def _score_outputs(self, logits: torch.Tensor, features: torch.Tensor | None) -> torch.Tensor:
        """Scores from one batch's logits and (if ``uses_features``) features."""

    def _score_inputs(self, x: torch.Tensor, logits: torch.Tensor, features: torch.Tensor | None) -> torch.Tensor:
        """Scores of one validated batch from its logits and features; a detector that also needs the
        inputs themselves (a combination with generative parts) overrides this."""
        return self._score_outputs(logits, features)

    def _score_batch(self, x: torch.Tensor) -> torch.Tensor:
        return self._score_inputs(x, *self.outputs(x))

    def score_with_logits(self, x: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and scores from one forward pass per batch (what a guarded classifier uses),
        through ``run_batches`` like :meth:`score`."""
        x = self.validate(x)

        def batch(start: int, stop: int) -> dict[str, torch.Tensor]:
            with torch.no_grad():
                part = x[start:stop]
                out, feats = self.outputs(part)
                return {"logits": out.cpu(), "score": self._score_inputs(part, out, feats).double().cpu()}

        outputs = run_batches(batch, x.shape[0], self.batch_size, desc="scoring", show_progress=False)
        if not outputs:
            return torch.empty((0, self.classifier.num_classes)), torch.empty(0, dtype=torch.float64)
        return outputs["logits"], outputs["score"]

    def _fit(self, x: torch.Tensor, y: torch.Tensor | None) -> None:
        """Stateless post-hoc scores need no fitting; feature-based ones override this."""


def list_detectors() -> list[str]:
    """Names of every registered detector, sorted."""
    _import_detectors()
    return sorted(_DETECTORS)


def detector_class(name: str) -> type[Detector]:
    """The detector class registered as ``name``; an unknown name is a one-line error listing the known ones."""
    _import_detectors()
    if name not in _DETECTORS:
        raise UnknownNameError(f"unknown detector {name!r}; expected one of: {', '.join(sorted(_DETECTORS))}")
    return _DETECTORS[name]


def make_detector(name: str, classifier: Classifier | None = None, **config: Any) -> Detector:
    """Build detector ``name``; post-hoc detectors need the ``classifier`` they read."""
    cls = detector_class(name)
    try:
        if getattr(cls, "optional_classifier", False):  # a combination reads one only for post-hoc parts
            return cls(classifier, **config)
        if cls.needs_classifier:
            if classifier is None:
                raise InputError(f"the {name} detector reads a classifier's outputs; pass classifier=")
            return cls(classifier, **config)
        return cls(**config)
    except TypeError as exc:
        raise InputError(f"bad options for the {name} detector: {exc}") from None


def _import_detectors() -> None:
    import trustlab.ood.combined  # noqa: F401
    import trustlab.ood.generative  # noqa: F401
    import trustlab.ood.posthoc  # noqa: F401


# ---------------------------------------------------------------------- artefacts -------------
def detector_metadata(detector: Detector) -> dict[str, str]:
    """The artefact metadata of a fitted detector: its name, config, input shape and bounds, as JSON."""
    if not detector.fitted:
        raise NotFittedError(ERR_NOT_FITTED.format(name=detector.name))
    spec = {
        "name": detector.name,
        "config": detector.config(),
        "input_shape": list(detector.input_shape_),
        "bounds": None if detector.bounds_ is None else list(detector.bounds_),
    }
    return {"detector": json.dumps(spec)}


def detector_from_metadata(
    spec: dict[str, Any], state: dict[str, torch.Tensor], classifier: Classifier | None, **overrides: Any
) -> Detector:
    """Rebuild a detector from its stored metadata and learned tensors; ``overrides`` change config
    options (e.g. the score)."""
    detector = make_detector(spec["name"], classifier, **{**spec["config"], **overrides})
    detector.set_fitted(spec["input_shape"], spec["bounds"])  # before the state: modules are built for the shape
    try:
        detector.load_state(state)
    except (KeyError, RuntimeError) as exc:
        raise ModelLoadError(f"stored {spec['name']} detector state does not fit its config ({exc})") from None
    return detector


def save_detector(detector: Detector, path: str | os.PathLike) -> Path:
    """Write a fitted detector as one safetensors file (atomically)."""
    state = {k: v.detach().cpu().contiguous() for k, v in detector.state().items()}
    return atomic_write_bytes(path, safetensors_save(state, metadata={"format": FORMAT, **detector_metadata(detector)}))


def read_artefact(path: str | os.PathLike, expected_format: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a trustlab safetensors artefact of ``expected_format``."""
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"{path} does not exist")
    state, metadata = read_safetensors(path)
    if metadata.get("format") != expected_format:
        raise ModelLoadError(f"{path} is not a {expected_format} artefact (format {metadata.get('format')!r})")
    return state, metadata


def load_detector(path: str | os.PathLike, *, classifier: Classifier | None = None, **overrides: Any) -> Detector:
    """Load a detector saved by :func:`save_detector`. ``overrides`` change scoring options
    (e.g. ``score="recon"`` for a generative detector trained once and scored two ways)."""
    state, metadata = read_artefact(path, FORMAT)
    return detector_from_metadata(json.loads(metadata["detector"]), state, classifier, **overrides)
