"""Any loaded model as bytes that rebuild it without pickles: for artefacts (a guard) that must
carry a model outside the architecture registry.

A compiled TorchScript model is stored as its own TorchScript archive; any other module (an
exported program, an ONNX graph, a plain ``nn.Module``) as a ``torch.export`` program with a
dynamic batch dimension, or, where export fails, as a traced TorchScript archive. Both formats are
what :func:`~trustlab.models.artefacts.load_model` reads from files, and both keep module names,
so a post-hoc detector's ``layer`` still names the same module. :func:`module_archive` checks
that the archive reproduces the model's outputs before returning it.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

from trustlab.core.exceptions import InputError, ModelLoadError
from trustlab.models.artefacts import unflattened
from trustlab.models.classifier import Classifier, error_reason
from trustlab.models.scripted import HookableScript, hookable_script

TORCHSCRIPT, EXPORT = "torchscript", "torch.export"
ERR_NOT_PORTABLE = (
    "this model cannot be stored ({why}); save it from a registered architecture, or export it "
    "with TorchScript or torch.export and load that file"
)
_AGREE_ATOL, _AGREE_RTOL = 1e-5, 1e-4


@contextlib.contextmanager
def quiet_torchscript() -> Iterator[None]:
    """TorchScript is deprecated in recent torch; trustlab still reads and writes it on purpose."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=r"`torch\.jit")
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        yield


def _check_batch(classifier: Classifier) -> torch.Tensor:
    """Three seeded inputs within the bounds, normalised: what the module itself sees."""
    generator = torch.Generator().manual_seed(0)
    x = torch.rand((3, *classifier.input_shape), generator=generator)
    if classifier.bounds is not None:
        low, high = classifier.bounds
        x = low + (high - low) * x
    return classifier.normalise(x.to(classifier.device))


def _script_bytes(script: torch.jit.ScriptModule) -> bytes:
    buffer = io.BytesIO()
    torch.jit.save(script, buffer)
    return buffer.getvalue()


def _export_bytes(module: nn.Module, example: torch.Tensor) -> bytes:
    first = next(iter(inspect.signature(module.forward).parameters.values()))
    batch = {0: torch.export.Dim("batch")}
    spec = (batch,) if first.kind is inspect.Parameter.VAR_POSITIONAL else batch  # forward(*args): unflattened
    program = torch.export.export(module, (example,), dynamic_shapes={first.name: spec})
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    return buffer.getvalue()


def _candidates(classifier: Classifier, example: torch.Tensor):
    module = classifier.module
    script = module.script if isinstance(module, HookableScript) else module
    if isinstance(script, torch.jit.ScriptModule):
        yield TORCHSCRIPT, lambda: _script_bytes(script)
        return
    yield EXPORT, lambda: _export_bytes(module, example)
    yield TORCHSCRIPT, lambda: _script_bytes(torch.jit.trace(module, example))


def module_archive(classifier: Classifier) -> tuple[str, bytes]:
    """``(format, bytes)`` that rebuild ``classifier.module`` (see the module doc); a one-line
    InputError when no format reproduces its outputs."""
    example = _check_batch(classifier)
    with torch.no_grad():
        expected = classifier.module(example)
    reasons = []
    with quiet_torchscript():
        for kind, make in _candidates(classifier, example):
            try:
                data = make()
                rebuilt = module_from_archive(kind, data, classifier.input_shape)
                with torch.no_grad():
                    got = rebuilt(example)
            except Exception as exc:  # each exporter fails in its own ways; the next may work
                reasons.append(f"{kind}: {error_reason(exc)}")
                continue
            if got.shape == expected.shape and torch.allclose(got, expected, atol=_AGREE_ATOL, rtol=_AGREE_RTOL):
                return kind, data
            reasons.append(f"{kind} does not reproduce its outputs")
    raise InputError(ERR_NOT_PORTABLE.format(why="; ".join(reasons)))


def module_from_archive(kind: str, data: bytes, input_shape: tuple[int, ...]) -> nn.Module:
    """The module :func:`module_archive` stored, hookable (TorchScript through its Python mirror,
    exported programs unflattened)."""
    if kind not in (TORCHSCRIPT, EXPORT):
        raise ModelLoadError(f"unknown stored model format {kind!r}; expected {TORCHSCRIPT} or {EXPORT}")
    try:
        with quiet_torchscript():
            if kind == TORCHSCRIPT:
                script = torch.jit.load(io.BytesIO(data), map_location="cpu")
                return hookable_script(script, torch.zeros((1, *input_shape)))[0]
            return unflattened(torch.export.load(io.BytesIO(data)))
    except (RuntimeError, ValueError, KeyError) as exc:
        raise ModelLoadError(f"the stored {kind} model cannot be read ({error_reason(exc)})") from None


def save_any_model(classifier: Classifier, path: str | os.PathLike) -> Path:
    """Write ``classifier`` where :func:`~trustlab.models.artefacts.load_model` reads it back: a
    trustlab artefact for a registered architecture, else its :func:`module_archive` (TorchScript
    or ``torch.export``, which record no normalisation: give ``--mean``/``--std`` again)."""
    from trustlab.core.files import atomic_write_bytes
    from trustlab.models.artefacts import save_model

    if classifier.architecture is not None:
        return save_model(classifier, path)
    _kind, data = module_archive(classifier)
    return atomic_write_bytes(path, data)
