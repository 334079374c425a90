"""Saving and loading models without trusting pickles.

The trustlab artefact is one ``.safetensors`` file: the weights plus, in its metadata, the
architecture name, its JSON config and the Classifier description (input shape, bounds,
normalisation, class names). Also read: TorchScript archives (mirrored by a Python module tree
so that forward hooks work, see :mod:`trustlab.models.scripted`), ``torch.export`` programs
(unflattened: one module per original submodule), ONNX files (extra ``onnx``, see
:mod:`trustlab.models.onnx_reader`), plain safetensors or ``torch.save`` state dicts (with
``architecture=``), and, only with ``allow_pickle=True``, full pickled modules.

Only trustlab artefacts record normalisation; for every other format the loaded classifier says
so (``normalisation_recorded`` is False unless ``mean``/``std`` were given) and
:func:`normalisation_note` words the note the command line prints.

Pickles are refused before any of their code can run: ``torch.load(weights_only=True)`` uses a
restricted unpickler that rejects every global outside torch's allow-list at lookup time,
before anything is called.
"""

from __future__ import annotations

import json
import os
import pickle
import pickletools
import struct
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as safetensors_load
from safetensors.torch import save as safetensors_save
from torch import nn

from trustlab.core.exceptions import InputError, ModelLoadError, PickleRefusedError
from trustlab.core.files import atomic_write_bytes
from trustlab.models.architectures import build_architecture, list_architectures
from trustlab.models.classifier import Classifier
from trustlab.models.scripted import hookable_script

FORMAT = "trustlab-model/1"
NOTE_NO_NORMALISATION = "note: no normalisation recorded for {name}; inputs are passed as they are (use --mean/--std)"
ERR_PICKLE = (
    "{path} is a full pickle, which can run arbitrary code when loaded; refusing. "
    "Only if you trust its author, pass --allow-pickle (allow_pickle=True)"
)


def classifier_state(classifier: Classifier) -> dict[str, torch.Tensor]:
    """The module's weights as contiguous CPU tensors, ready for safetensors."""
    return {k: v.detach().cpu().contiguous() for k, v in classifier.module.state_dict().items()}


def classifier_from_description(
    described: dict[str, Any],
    state: dict[str, torch.Tensor],
    path: Path,
    batch_size: int = 256,
    *,
    module: nn.Module | None = None,
    **kwargs: Any,
) -> Classifier:
    """Rebuild a Classifier from ``Classifier.describe()`` and its weights (``kwargs`` override);
    or, for a model outside the registry, around ``module`` (already holding its weights)."""
    if module is None:
        module = build_architecture(described["architecture"], **described["config"])
        _load_state(module, state, path)
    options = {
        "bounds": described["bounds"],
        "mean": described["mean"],
        "std": described["std"],
        "class_names": described["class_names"],
        "num_classes": described["num_classes"],
    }
    options.update(kwargs)
    return Classifier(
        module,
        input_shape=tuple(described["input_shape"]),
        batch_size=batch_size,
        architecture=described["architecture"],
        config=described["config"],
        **options,
    )


def save_model(classifier: Classifier, path: str | os.PathLike) -> Path:
    """Write ``classifier`` as one safetensors artefact (atomically). Needs a registered architecture."""
    if classifier.architecture is None:
        raise InputError(
            "only models built from a registered architecture can be saved as trustlab "
            f"artefacts (one of: {', '.join(list_architectures())}); export others with TorchScript"
        )
    state = classifier_state(classifier)
    metadata = {"format": FORMAT, "classifier": json.dumps(classifier.describe())}
    return atomic_write_bytes(path, safetensors_save(state, metadata=metadata))


def load_model(
    path: str | os.PathLike,
    *,
    architecture: str | None = None,
    config: dict[str, Any] | None = None,
    input_shape: tuple[int, ...] | None = None,
    allow_pickle: bool = False,
    batch_size: int = 256,
    mean: Any = None,
    std: Any = None,
    **classifier_kwargs: Any,
) -> Classifier:
    """Load any supported model file as a :class:`Classifier`.

    ``architecture``/``config`` rebuild the module for bare state dicts. ``input_shape`` is used
    only when the file does not declare one (TorchScript, state dicts, pickles); trustlab
    artefacts, exported programs and ONNX files declare their own. ``mean``/``std`` (one value,
    or one per channel or feature) are the normalisation applied inside the classifier: they
    override a trustlab artefact's and are the only source for every other format.
    ``classifier_kwargs`` (bounds, class_names, num_classes) override what the file says.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"model file {path} does not exist")
    kwargs = dict(classifier_kwargs)
    kwargs.update({k: v for k, v in (("mean", mean), ("std", std)) if v is not None})
    head = _read_head(path)
    if path.suffix.lower() == ".onnx":
        return _load_onnx(path, input_shape, batch_size, kwargs)
    if path.suffix.lower() == ".skops":
        from trustlab.models.sklearn_reader import load_skops

        return load_skops(path, allow_untrusted=allow_pickle, batch_size=batch_size, kwargs=kwargs)
    if head.startswith(b"PK\x03\x04"):
        return _load_zip(path, architecture, config, input_shape, allow_pickle, batch_size, kwargs)
    if _looks_like_safetensors(head):
        return _load_safetensors(path, architecture, config, input_shape, batch_size, kwargs)
    if _parses_as_pickle(path):
        obj = _torch_load(path, allow_pickle)
        return _from_object(obj, path, architecture, config, input_shape, batch_size, kwargs)
    raise ModelLoadError(
        f"{path} is not a model file trustlab can read "
        "(safetensors, TorchScript, torch.export, ONNX, skops, or torch.save)"
    )


def normalisation_note(classifier: Classifier, name: str) -> str | None:
    """The one-line note for a classifier loaded from ``name`` that records no normalisation, or None."""
    return None if classifier.normalisation_recorded else NOTE_NO_NORMALISATION.format(name=name)


def _read_head(path: Path) -> bytes:
    with open(path, "rb") as handle:
        return handle.read(16)


def _parses_as_pickle(path: Path) -> bool:
    """True if the file starts with a well-formed pickle. Only parses opcodes; runs nothing."""
    try:
        with open(path, "rb") as handle:
            for _ in pickletools.genops(handle):
                pass
    except Exception:  # genops raises ValueError and others on non-pickles
        return False
    return True


def _looks_like_safetensors(head: bytes) -> bool:
    if len(head) < 9:
        return False
    (header_len,) = struct.unpack("<Q", head[:8])
    return 0 < header_len < 100_000_000 and head[8:9] == b"{"


def _torch_load(path: Path, allow_pickle: bool) -> Any:
    try:
        with warnings.catch_warnings():  # torch warns about plain pickles' protocol before refusing them
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        if not allow_pickle:
            raise PickleRefusedError(ERR_PICKLE.format(path=path)) from None
    except (RuntimeError, EOFError, ValueError, zipfile.BadZipFile) as exc:
        raise ModelLoadError(f"{path} is not a readable torch file ({_first_line(exc)})") from None
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # user opted in: report anything the pickle raised, in one line
        raise ModelLoadError(f"unpickling {path} failed ({_first_line(exc)})") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _load_zip(path, architecture, config, input_shape, allow_pickle, batch_size, kwargs) -> Classifier:
    try:
        names = zipfile.ZipFile(path).namelist()
    except zipfile.BadZipFile as exc:
        raise ModelLoadError(f"{path} is a damaged archive ({exc})") from None
    if any(n.endswith("models/model.json") or n.endswith("/archive_format") for n in names):
        return _load_exported(path, input_shape, batch_size, kwargs)
    if any("/code/" in n for n in names):
        try:
            module = torch.jit.load(str(path), map_location="cpu")
        except RuntimeError as exc:
            raise ModelLoadError(f"{path} is not a loadable TorchScript archive ({_first_line(exc)})") from None
        if input_shape is not None:  # else _classifier says what is missing
            module, _ = hookable_script(module, torch.zeros((1, *input_shape)))
        return _classifier(module, path, input_shape, batch_size, kwargs)
    obj = _torch_load(path, allow_pickle)
    return _from_object(obj, path, architecture, config, input_shape, batch_size, kwargs)


def _load_exported(path: Path, input_shape, batch_size, kwargs) -> Classifier:
    try:
        program = torch.export.load(str(path))
    except Exception as exc:  # torch.export raises many types for a damaged archive
        raise ModelLoadError(f"{path} is not a loadable torch.export program ({_first_line(exc)})") from None
    user_inputs = [
        n
        for n in program.graph.nodes
        if n.op == "placeholder"
        and n.name
        in {
            s.arg.name
            for s in program.graph_signature.input_specs
            if s.kind == torch.export.graph_signature.InputKind.USER_INPUT
        }
    ]
    if len(user_inputs) != 1:
        raise ModelLoadError(f"{path}: an exported classifier must take exactly one input, found {len(user_inputs)}")
    shape = user_inputs[0].meta["val"].shape
    if isinstance(shape[0], int):
        raise ModelLoadError(
            f"{path} was exported with a fixed batch size of {shape[0]}; export it with a dynamic "
            "batch dimension (dynamic_shapes={'x': {0: torch.export.Dim('batch')}})"
        )
    declared = tuple(int(s) for s in shape[1:])
    return _classifier(unflattened(program), path, declared, batch_size, kwargs)


def unflattened(program: Any) -> nn.Module:
    """The program with its original module hierarchy (one module per submodule, so that hooks
    and layer names work), if unflattening succeeds; else its flat graph module."""
    try:
        with warnings.catch_warnings():  # torch's own unflatten trips over a deprecation of its own
            warnings.filterwarnings("ignore", category=FutureWarning, message=r".*treespec")
            return torch.export.unflatten(program)
    except Exception:  # unflattening is best effort; the flat module computes the same
        return program.module()


def _load_onnx(path: Path, input_shape, batch_size, kwargs) -> Classifier:
    from trustlab.models.onnx_reader import gives_gradients, read_onnx

    module, declared = read_onnx(path)
    shape = declared or input_shape
    if shape is not None and len(shape) == 1:  # tabular features: no pixel bounds unless the caller says
        kwargs = {"bounds": None, **kwargs}
    classifier = _classifier(module, path, shape, batch_size, kwargs)
    if not gives_gradients(module):  # a tree ensemble: probabilities only, gradient checks are skipped
        classifier.requires_gradients = False
    return classifier


def read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and string metadata of a safetensors file, with a one-line error if damaged."""
    try:
        raw = path.read_bytes()
        state = safetensors_load(raw)
        header_len = struct.unpack("<Q", raw[:8])[0]
        metadata = json.loads(raw[8 : 8 + header_len]).get("__metadata__") or {}
    except (SafetensorError, ValueError, struct.error) as exc:
        raise ModelLoadError(f"{path} is a damaged safetensors file ({_first_line(exc)})") from None
    return state, metadata


def _load_safetensors(path, architecture, config, input_shape, batch_size, kwargs) -> Classifier:
    state, metadata = read_safetensors(path)
    if metadata.get("format") == FORMAT:
        return classifier_from_description(json.loads(metadata["classifier"]), state, path, batch_size, **kwargs)
    return _from_object(state, path, architecture, config, input_shape, batch_size, kwargs)


def _from_object(obj, path, architecture, config, input_shape, batch_size, kwargs) -> Classifier:
    if isinstance(obj, nn.Module):
        return _classifier(obj, path, input_shape, batch_size, kwargs)
    if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        if architecture is None:
            raise ModelLoadError(
                f"{path} holds weights only; name their architecture with --arch "
                f"(one of: {', '.join(list_architectures())})"
            )
        module = build_architecture(architecture, **(config or {}))
        _load_state(module, obj, path)
        return _classifier(module, path, input_shape, batch_size, kwargs, architecture, config or {})
    raise ModelLoadError(f"{path} holds a {type(obj).__name__}, not a model or a state dict")


def _load_state(module: nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    try:
        module.load_state_dict(state)
    except RuntimeError as exc:
        raise ModelLoadError(f"weights in {path} do not fit the architecture ({_first_line(exc)})") from None


def _classifier(module, path, input_shape, batch_size, kwargs, architecture=None, config=None) -> Classifier:
    if input_shape is None:
        raise ModelLoadError(
            f"{path} does not say what input shape it expects; pass input_shape (the CLI takes it from --dataset)"
        )
    classifier = Classifier(
        module, input_shape=input_shape, batch_size=batch_size, architecture=architecture, config=config, **kwargs
    )
    classifier.normalisation_recorded = "mean" in kwargs or "std" in kwargs
    return classifier
