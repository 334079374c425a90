"""Find a model's layers by running it, not by their Python types.

:func:`probe` runs one forward pass of a batch of one input (at the lower input bound, zeros
for unbounded features) with forward hooks on every submodule, and records, in call order, each
module's name (from ``named_modules``), kind, input and output shapes. Two defaults come from it:

* :func:`gradcam_layer`: the last module whose output is a 4-D feature map (N x C x H x W),
  preferring the activation called right after the last convolution (the rectified maps that
  Selvaraju et al. weight), else that convolution, else the last such module without submodules;
* :func:`feature_layer`: the module whose *input* is the feature vector of the last linear map,
  i.e. the last module taking an N x F input to the N x num_classes logits (linear ones first).

Layers are always named by their module name, the strings ``named_modules`` gives; Grad-CAM's
``layer=`` and the post-hoc detectors' ``layer=`` take those names.

Works for plain modules, ``torch.export`` programs (loaded unflattened, one module per original
submodule) and TorchScript. A loaded TorchScript module refuses forward hooks; :func:`hookable`
gives a classifier whose module is its Python mirror (:class:`~trustlab.models.scripted.HookableScript`,
same names, same weights), which :func:`~trustlab.models.artefacts.load_model` already returns for
TorchScript files. Where even that is impossible, the errors say why.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from trustlab.core.exceptions import InputError, UnknownNameError
from trustlab.models.classifier import Classifier
from trustlab.models.scripted import HookableScript, hookable_script

ERR_NO_FEATURE_MAP = (
    "no module of this model outputs a 4-D feature map; pass --gradcam-layer NAME "
    "(layer= in Python; modules: {modules})"
)
ERR_NO_FEATURES = (
    "no module of this model maps a feature vector (N x F) to the N x {classes} logits; pass "
    "--feature-layer NAME, the module whose input is the feature vector (layer= in Python; modules: {modules})"
)
ERR_UNKNOWN_LAYER = "the model has no layer {name!r}; its layers: {modules}"
ERR_OPAQUE = "cannot look inside this model: {reason}; its layers cannot be probed"
MAX_LISTED = 40  # module names listed in one error line

CONV_KINDS = ("conv",)  # a kind starting like this is a convolution (Conv2d, conv2d, _convolution)
ACTIVATION_KINDS = frozenset(
    {"relu", "relu6", "leakyrelu", "leaky_relu", "elu", "selu", "celu", "gelu", "silu", "mish"}
    | {"hardswish", "hardtanh", "softplus", "tanh", "sigmoid", "prelu"}
)
LINEAR_KINDS = frozenset({"linear", "addmm", "gemm", "matmul", "mm"})
RELU_OPS = ("relu", "relu_")  # ATen operators a ReLU runs as


@dataclass(frozen=True)
class Layer:
    """One submodule as the probe saw it: shapes of its first call (batch of one)."""

    name: str
    kind: str
    input_shape: tuple[int, ...] | None
    output_shape: tuple[int, ...] | None
    calls: int
    leaf: bool

    @property
    def is_conv(self) -> bool:
        return self.kind.lower().lstrip("_").startswith(CONV_KINDS)

    @property
    def is_activation(self) -> bool:
        return self.kind.lower() in ACTIVATION_KINDS

    @property
    def is_linear(self) -> bool:
        return self.kind.lower() in LINEAR_KINDS


@dataclass(frozen=True)
class Probe:
    """What one forward pass showed: the layers in call order."""

    layers: tuple[Layer, ...]

    def names(self) -> list[str]:
        return [layer.name for layer in self.layers]

    def listed(self) -> str:
        return listed(self.names())


def listed(names: list[str]) -> str:
    """Names for one error line (at most ``MAX_LISTED``)."""
    shown = ", ".join(names[:MAX_LISTED]) or "none"
    return shown + (f", ... ({len(names) - MAX_LISTED} more)" if len(names) > MAX_LISTED else "")


# ---------------------------------------------------------------------- hookable modules ---------
def probe_input(classifier: Classifier) -> torch.Tensor:
    """One input at the lower bound (zeros when unbounded), on the classifier's device."""
    x = torch.zeros((1, *classifier.input_shape), device=classifier.device)
    return x + classifier.bounds[0] if classifier.bounds is not None else x


def hookable(classifier: Classifier) -> Classifier:
    """``classifier`` itself, or, when its module is a compiled TorchScript module (which refuses
    hooks), a Classifier around its Python mirror: same names, same weights, same outputs."""
    module, reason = _hookable_module(classifier)
    if reason is not None:
        raise InputError(ERR_OPAQUE.format(reason=reason))
    return classifier if module is classifier.module else classifier.with_module(module)


def _hookable_module(classifier: Classifier) -> tuple[nn.Module, str | None]:
    module = classifier.module
    if not isinstance(module, torch.jit.ScriptModule):
        return module, None
    mirror, reason = hookable_script(module, classifier.normalise(probe_input(classifier)))
    return mirror, (f"it is a TorchScript module and {reason}" if reason else None)


def find_module(classifier: Classifier, name: str) -> nn.Module:
    """The submodule called ``name`` (a ``named_modules`` name) of a hookable classifier."""
    modules = dict(classifier.module.named_modules())
    if not isinstance(name, str) or name not in modules or name == "":
        names = [n for n in modules if n]
        raise UnknownNameError(ERR_UNKNOWN_LAYER.format(name=name, modules=listed(names)))
    return modules[name]


# ---------------------------------------------------------------------- the probe ----------------
def kind_of(module: nn.Module) -> str:
    """What a module computes: its class name, a TorchScript module's original class name, or for
    a graph module without submodules (an unflattened export) the operators it calls."""
    if isinstance(module, HookableScript):
        return module.original_name
    graph = getattr(module, "graph", None)
    if isinstance(graph, torch.fx.Graph):
        ops = []
        for node in graph.nodes:
            if node.op == "call_module":
                return type(module).__name__
            if node.op == "call_function":
                schema = getattr(node.target, "_schema", None)
                op = schema.name.split("::")[-1] if schema is not None else getattr(node.target, "__name__", "")
                if op and op not in ops:
                    ops.append(op)
        if ops:
            return "+".join(ops)
    return type(module).__name__


def _first_tensor(value: Any) -> torch.Tensor | None:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, list | tuple):
        for item in value:
            found = _first_tensor(item)
            if found is not None:
                return found
    return None


def _shape(value: Any) -> tuple[int, ...] | None:
    t = _first_tensor(value)
    return None if t is None else tuple(t.shape)


class _ReluCounter(TorchDispatchMode):
    """Counts the ATen ReLU operators a forward pass runs, however they were called."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.overloadpacket.__name__ in RELU_OPS:
            self.count += 1
        return func(*args, **(kwargs or {}))


def probe(classifier: Classifier) -> Probe:
    """Run one input through ``classifier`` with hooks on every submodule (see the module doc)."""
    classifier = hookable(classifier)
    modules = [(name, m) for name, m in classifier.module.named_modules() if name]
    seen: dict[str, dict[str, Any]] = {}
    order: list[str] = []

    def before(name: str):
        def hook(_module: nn.Module, args: Any) -> None:
            if name not in seen:
                order.append(name)
                seen[name] = {"input": _shape(args), "output": None, "calls": 0}
            seen[name]["calls"] += 1

        return hook

    def after(name: str):
        def hook(_module: nn.Module, _args: Any, output: Any) -> None:
            if seen[name]["output"] is None:
                seen[name]["output"] = _shape(output)

        return hook

    handles = []
    try:
        for name, module in modules:
            if isinstance(module, torch.jit.ScriptModule):
                continue  # refuses hooks (a compiled module nested in a Python one)
            handles.append(module.register_forward_pre_hook(before(name)))
            handles.append(module.register_forward_hook(after(name)))
        with torch.no_grad():
            classifier._checked_forward(probe_input(classifier))
    finally:
        for handle in handles:
            handle.remove()
    by_name = dict(modules)
    layers = tuple(
        Layer(
            name=name,
            kind=kind_of(by_name[name]),
            input_shape=seen[name]["input"],
            output_shape=seen[name]["output"],
            calls=seen[name]["calls"],
            leaf=not any(True for _ in by_name[name].children()),
        )
        for name in order
    )
    return Probe(layers=layers)


def relu_usage(classifier: Classifier) -> tuple[int, int]:
    """How one probe pass applies ReLU: the ATen ReLU operators it runs, however called
    (``nn.ReLU``, ``F.relu``, ``torch.relu``, in place or not), and how many ``nn.ReLU`` module
    calls there were. More operators than module calls: some ReLU is applied as a function."""
    classifier = hookable(classifier)
    calls = [0]

    def count(_module: nn.Module, _args: Any) -> None:
        calls[0] += 1

    handles = [m.register_forward_pre_hook(count) for m in classifier.module.modules() if isinstance(m, nn.ReLU)]
    counter = _ReluCounter()
    try:
        with torch.no_grad(), counter:
            classifier._checked_forward(probe_input(classifier))
    finally:
        for handle in handles:
            handle.remove()
    return counter.count, calls[0]


# ---------------------------------------------------------------------- defaults -----------------
def _feature_map(layer: Layer) -> bool:
    return layer.output_shape is not None and len(layer.output_shape) == 4


def _chosen(classifier: Classifier, role: str) -> str:
    name = classifier.layer_names[role]
    find_module(classifier, name)  # a one-line error listing the layers when there is no such module
    return name


def gradcam_layer(classifier: Classifier) -> str:
    """Grad-CAM's default layer (see the module doc); a one-line InputError naming
    ``--gradcam-layer`` when no module outputs a 4-D feature map. The user's choice
    (``classifier.layer_names["gradcam"]``) wins."""
    if "gradcam" in classifier.layer_names:
        return _chosen(classifier, "gradcam")
    found = probe(classifier)
    layers = list(found.layers)
    maps = [i for i, layer in enumerate(layers) if _feature_map(layer) and layer.calls == 1]
    if not maps:
        raise InputError(ERR_NO_FEATURE_MAP.format(modules=found.listed()))
    convs = [i for i in maps if layers[i].is_conv and layers[i].leaf]
    if convs:
        last = convs[-1]
        following = layers[last + 1] if last + 1 < len(layers) else None
        if following is not None and following.leaf and following.is_activation and following.calls == 1:
            if following.output_shape == layers[last].output_shape:
                return following.name
        return layers[last].name
    leaves = [i for i in maps if layers[i].leaf]
    return layers[(leaves or maps)[-1]].name


def feature_layer(classifier: Classifier) -> str:
    """The module whose input is the penultimate feature vector (see the module doc); a one-line
    InputError naming ``--feature-layer`` when none maps an N x F input to the logits. The user's
    choice (``classifier.layer_names["features"]``) wins."""
    if "features" in classifier.layer_names:
        return _chosen(classifier, "features")
    found = probe(classifier)
    classes = classifier.num_classes
    candidates = [
        layer
        for layer in found.layers
        if layer.calls == 1
        and layer.input_shape is not None
        and len(layer.input_shape) == 2
        and layer.output_shape == (1, classes)
    ]
    if not candidates:
        raise InputError(ERR_NO_FEATURES.format(classes=classes, modules=found.listed()))
    linear = [layer for layer in candidates if layer.is_linear]
    mapping = [layer for layer in candidates if layer.input_shape != layer.output_shape]
    return (linear or mapping or candidates)[-1].name
