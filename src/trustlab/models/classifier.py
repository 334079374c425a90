"""The Classifier wrapper: the one place that knows how to call a model.

It owns the module, the input bounds (pixel space), the normalisation (applied inside, once),
the device, eval mode, the number and names of classes, and a ``batch_size`` that bounds memory.
Attacks, detectors and explainers hand it pixel-space inputs and never normalise by hand.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from trustlab.core.exceptions import GradientsUnavailableError, InputError
from trustlab.core.validate import class_indices, positive_int, validate_inputs


def tensors_sha256(state: dict[str, torch.Tensor]) -> str:
    """Digest of named tensors (names, dtypes, shapes, bytes), independent of file layout."""
    digest = hashlib.sha256()
    for key, value in sorted(state.items()):
        tensor = value.detach().cpu().contiguous()
        digest.update(f"{key}:{tensor.dtype}:{tuple(tensor.shape)}\n".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


TORCHSCRIPT_HEADER = "The following operation failed in the TorchScript interpreter."
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Warning)\b.*:")


def error_reason(exc: BaseException) -> str:
    """The line of an error message that says why it failed.

    Most errors say it on their first line. The TorchScript interpreter's first line only says
    that something failed; the reason (``RuntimeError: mat1 and mat2 shapes cannot be
    multiplied ...``) is its last line naming an exception, after two tracebacks.
    """
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    if len(lines) > 1 and (lines[0] == TORCHSCRIPT_HEADER or lines[0].startswith("Traceback")):
        named = [line for line in lines if _EXCEPTION_LINE.match(line)]
        return named[-1] if named else lines[-1]
    return lines[0]


def _broadcastable(stat: Any, input_shape: tuple[int, ...], name: str) -> torch.Tensor | None:
    """Per-channel (images) or per-feature (tabular) statistic shaped to broadcast over inputs."""
    if stat is None:
        return None
    t = torch.as_tensor(stat, dtype=torch.float32).flatten()
    if t.numel() == 1:
        return t.reshape((1,) * len(input_shape))
    if t.numel() == input_shape[0]:
        return t.reshape((input_shape[0],) + (1,) * (len(input_shape) - 1))
    if t.numel() == int(np.prod(input_shape)):
        return t.reshape(input_shape)
    raise InputError(
        f"{name} must have 1, {input_shape[0]} or {int(np.prod(input_shape))} values for inputs "
        f"of shape {input_shape}, got {t.numel()}"
    )


def _eval_mode(module: nn.Module) -> nn.Module:
    """Switch to eval mode; exported programs refuse (their mode was fixed at export time)."""
    try:
        return module.eval()
    except NotImplementedError:
        return module


class Classifier:
    """A trained classifier and everything needed to call it correctly.

    Parameters are keyword-only. ``bounds`` is the valid input range in pixel space (``None``
    for unbounded tabular features); ``mean``/``std`` are applied inside ``forward``. The module
    is put in eval mode and left on its own device: inputs are moved to it, outputs come back
    on the inputs' device.
    """

    requires_gradients = True
    #: False when the model file this came from recorded no normalisation and none was given
    #: (set by ``load_model``; a note tells the user that inputs are passed as they are)
    normalisation_recorded = True

    def __init__(
        self,
        module: nn.Module,
        *,
        input_shape: Sequence[int],
        num_classes: int | None = None,
        bounds: tuple[float, float] | None = (0.0, 1.0),
        mean: Any = None,
        std: Any = None,
        class_names: Sequence[str] | None = None,
        batch_size: int = 256,
        architecture: str | None = None,
        config: dict[str, Any] | None = None,
    ) -> None:
        if not isinstance(module, nn.Module):
            raise InputError(f"module must be a torch.nn.Module, got {type(module).__name__}")
        self.module = _eval_mode(module)
        self.input_shape = tuple(int(s) for s in input_shape)
        self.bounds = None if bounds is None else (float(bounds[0]), float(bounds[1]))
        if self.bounds is not None and not self.bounds[0] < self.bounds[1]:
            raise InputError(f"bounds must be (low, high) with low < high, got {bounds}")
        self.device = next((p.device for p in module.parameters()), torch.device("cpu"))
        self.mean = _broadcastable(mean, self.input_shape, "mean")
        self.std = _broadcastable(std, self.input_shape, "std")
        if self.std is not None and (self.std <= 0).any():
            raise InputError("std must be positive")
        self._mean_dev = None if self.mean is None else self.mean.to(self.device)
        self._std_dev = None if self.std is None else self.std.to(self.device)
        self.batch_size = positive_int(batch_size, "batch_size")
        self.architecture = architecture
        self.config = dict(config or {})
        # layers chosen by the user instead of probing, by module name: "gradcam", "features"
        self.layer_names: dict[str, str] = {}
        self.num_classes = int(num_classes) if num_classes is not None else self._infer_num_classes()
        names = tuple(class_names) if class_names is not None else tuple(str(i) for i in range(self.num_classes))
        if len(names) != self.num_classes:
            raise InputError(f"class_names has {len(names)} names for {self.num_classes} classes")
        self.class_names = names

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(architecture={self.architecture!r}, input_shape={self.input_shape}, "
            f"num_classes={self.num_classes}, bounds={self.bounds}, device={self.device})"
        )

    # ------------------------------------------------------------------ calling ---------------
    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        if self._mean_dev is not None:
            x = x - self._mean_dev
        if self._std_dev is not None:
            x = x / self._std_dev
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Differentiable logits for one batch of pixel-space inputs already on ``device``.

        No validation and no batching: this is the hot path attacks differentiate through.
        """
        return self.module(self.normalise(x))

    __call__ = forward

    def validate(self, x: Any, *, name: str = "inputs") -> torch.Tensor:
        """Check shape, finiteness and bounds; return a float tensor. Used at every boundary."""
        return validate_inputs(x, self.input_shape, self.bounds, name=name)

    def validate_labels(self, y: Any, n: int, *, name: str = "labels") -> torch.Tensor:
        """Check that ``y`` holds ``n`` class indices this model can predict; return them as int64."""
        return class_indices(y, n, self.num_classes, name=name)

    def targets(self, x: torch.Tensor, target: Any = None) -> torch.Tensor:
        """The class each example is explained or measured towards: ``None`` means the predicted
        class, one index stands for every example; on ``x``'s device."""
        if target is None:
            return self.predict(x).to(x.device)
        return class_indices(target, x.shape[0], self.num_classes, name="target", scalar=True).to(x.device)

    def _checked_forward(self, chunk: torch.Tensor) -> torch.Tensor:
        """``forward`` that turns a module's shape complaint into a one-line InputError."""
        try:
            out = self.forward(chunk)
        except RuntimeError as exc:
            raise InputError(f"model failed on inputs of shape {tuple(chunk.shape)}: {error_reason(exc)}") from None
        if out.ndim != 2 or out.shape[0] != chunk.shape[0]:
            raise InputError(f"model must return logits of shape (N, classes), got {tuple(out.shape)}")
        return out

    def logits(self, x: Any, *, batch_size: int | None = None) -> torch.Tensor:
        """Logits for any number of inputs, ``batch_size`` at a time, without gradients."""
        x = self.validate(x)
        size = batch_size or self.batch_size
        outputs = []
        with torch.no_grad():
            for start in range(0, x.shape[0], size):
                chunk = x[start : start + size].to(self.device, non_blocking=True)
                outputs.append(self._checked_forward(chunk).to(x.device))
        if not outputs:
            return torch.empty((0, self.num_classes), device=x.device)
        return torch.cat(outputs)

    def proba(self, x: Any, *, batch_size: int | None = None) -> torch.Tensor:
        return torch.softmax(self.logits(x, batch_size=batch_size), dim=1)

    def predict(self, x: Any, *, batch_size: int | None = None) -> torch.Tensor:
        return self.logits(x, batch_size=batch_size).argmax(dim=1)

    def with_module(self, module: nn.Module) -> Classifier:
        """A Classifier around ``module`` with this one's bounds, normalisation, classes, batch size
        and architecture: for a copy whose weights will change, or a module wrapped to count calls."""
        twin = Classifier(
            module,
            input_shape=self.input_shape,
            num_classes=self.num_classes,
            bounds=self.bounds,
            mean=self.mean,
            std=self.std,
            class_names=self.class_names,
            batch_size=self.batch_size,
            architecture=self.architecture,
            config=self.config,
        )
        twin.normalisation_recorded = self.normalisation_recorded
        twin.requires_gradients = self.requires_gradients  # a tree ensemble's copy has none either
        twin.layer_names = dict(self.layer_names)
        return twin

    def copy(self) -> Classifier:
        """A Classifier around a deep copy of the module: changing its weights never touches the user's model."""
        from copy import deepcopy

        try:
            return self.with_module(deepcopy(self.module))
        except RuntimeError:  # e.g. an unflattened export keeps fake tensors in its graph's metadata
            return self.with_module(_structural_copy(self.module))

    def as_module(self) -> PixelSpaceModule:
        """This model as one ``nn.Module`` taking pixel-space inputs (normalisation inside): what
        libraries that hook or copy modules need (Captum's guided backprop, Quantus)."""
        return PixelSpaceModule(self)

    # ------------------------------------------------------------------ identity --------------
    def require_gradients(self, method: str) -> None:
        """Raise a clear error if ``method`` needs gradients this classifier cannot give."""
        if not self.requires_gradients:
            raise GradientsUnavailableError(f"{method} needs gradients, but this model only gives probabilities")

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.module.parameters())

    def weights_sha256(self) -> str:
        """Digest of the state dict: identifies the weights in manifests."""
        return tensors_sha256(self.module.state_dict())

    def describe(self) -> dict[str, Any]:
        """JSON-able description, stored beside weights and in model cards."""
        return {
            "architecture": self.architecture,
            "config": self.config,
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "class_names": list(self.class_names),
            "bounds": None if self.bounds is None else list(self.bounds),
            "mean": None if self.mean is None else self.mean.flatten().tolist(),
            "std": None if self.std is None else self.std.flatten().tolist(),
        }

    def _infer_num_classes(self) -> int:
        probe = torch.zeros((1, *self.input_shape), device=self.device)
        if self.bounds is not None:
            probe += self.bounds[0]
        with torch.no_grad():
            return int(self._checked_forward(probe).shape[1])


def _structural_copy(module: nn.Module) -> nn.Module:
    """A copy of ``module`` with its own parameters, buffers and submodules, sharing everything
    else (graphs, metadata): what a copy whose weights will change needs, where deepcopy fails."""
    import copy

    clone = copy.copy(module)
    clone._parameters = {
        k: None if p is None else nn.Parameter(p.detach().clone(), requires_grad=p.requires_grad)
        for k, p in module._parameters.items()
    }
    clone._buffers = {k: None if b is None else b.detach().clone() for k, b in module._buffers.items()}
    clone._modules = {k: None if m is None else _structural_copy(m) for k, m in module._modules.items()}
    return clone


class PixelSpaceModule(nn.Module):
    """A classifier's module behind its normalisation (buffers ``mean``/``std``, None when absent).
    Shares the module's weights; deep copies copy both."""

    def __init__(self, classifier: Classifier) -> None:
        super().__init__()
        self.inner = classifier.module
        self.register_buffer("mean", None if classifier._mean_dev is None else classifier._mean_dev.clone())
        self.register_buffer("std", None if classifier._std_dev is None else classifier._std_dev.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mean is not None:
            x = x - self.mean
        if self.std is not None:
            x = x / self.std
        return self.inner(x)


class BlackBoxClassifier(Classifier):
    """A model known only through a function returning class probabilities (no gradients).

    ``forward`` returns log-probabilities so that argmax and softmax behave as for logits;
    methods that need gradients call ``require_gradients`` and get a clear error.
    """

    requires_gradients = False

    def __init__(
        self,
        proba_fn: Callable[[torch.Tensor], torch.Tensor],
        *,
        input_shape: Sequence[int],
        num_classes: int,
        **kwargs: Any,
    ) -> None:
        self._proba_fn = proba_fn
        super().__init__(_ProbaModule(proba_fn), input_shape=input_shape, num_classes=num_classes, **kwargs)


class _ProbaModule(nn.Module):
    def __init__(self, proba_fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.proba_fn = proba_fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = torch.as_tensor(self.proba_fn(x.detach()), dtype=torch.float32)
        return p.clamp_min(1e-12).log()
