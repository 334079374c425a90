"""Certified lower bounds beside attack upper bounds: interval bound propagation and CROWN-IBP.

An attack that fails to flip a prediction proves nothing; a *certificate* does. For an L-inf ball
of radius eps around x (clipped to the classifier's input bounds) this module computes guaranteed
bounds on the logits and on the margins ``z_y - z_j``; when every margin's lower bound is
positive, no perturbation in the ball changes the prediction.

Methods (``method=``):

* ``"ibp"`` -- interval bound propagation (Gowal et al. 2018): the box is pushed through the
  network layer by layer. The last ``Linear`` layer is composed with the margin specification
  ``C`` (``C[j] = e_y - e_j``) before interval arithmetic, ``W' = C W, b' = C b`` (the "margin
  layer"), which is tighter than subtracting logit intervals.
* ``"crown-ibp"`` -- CROWN-IBP (Zhang et al. 2020): IBP gives every intermediate layer's bounds,
  then one backward pass of linear relaxations (CROWN, Zhang et al. 2018) runs from the margin
  specification to the input, with matrix products only (no autograd): ``A W`` for linear
  layers, ``conv_transpose2d`` for convolutions and average pooling, elementwise scaling for
  batch norm and the classifier's normalisation. ReLU and LeakyReLU use the adaptive relaxation
  (upper: the chord; lower slope 1 if ``u >= -l`` else 0, or the leak). MaxPool2d uses the
  DeepPoly-style relaxation: lower ``y >= x_i`` for the window entry with the largest lower bound,
  upper ``y <= x_i`` when that entry dominates the window (its lower bound >= every other upper
  bound), else the constant ``max u``. Layers without a linear relaxation here (sigmoid, tanh,
  ELU and other monotone activations, adaptive pooling, functional pooling, max-pooling with
  ``ceil_mode``) are *concretised*: the backward pass stops at them and bounds their term with
  their IBP interval -- always sound, only less tight.

What can be bounded (the model is traced with ``torch.fx.symbolic_trace``, so modules that are not
``nn.Sequential`` work): ``Linear``, ``Conv2d``, monotone elementwise activations (``ReLU``,
``LeakyReLU``, ``Sigmoid``, ``Tanh``, ``ELU``, ``SELU``, ``CELU``, ``Softplus``, ``Hardtanh``,
``ReLU6``, ``Hardsigmoid``, ``LogSigmoid``, ``Softsign`` and their functional forms),
``MaxPool1d/2d``, ``AvgPool1d/2d``, adaptive pooling, ``Flatten`` and ``flatten``/``view``/
``reshape``/``squeeze``/``unsqueeze`` calls, ``BatchNorm1d/2d`` with running statistics,
``Dropout`` (identity), ``Identity``, addition of two bounded tensors (residual connections) or of
a constant, and multiplication or division by a number. Anything else is refused up front with
one :class:`~trustlab.core.exceptions.InputError` naming every unsupported module or operation.

Memory: IBP costs about two forward passes; CROWN-IBP keeps one coefficient tensor per layer of
(specification rows x layer size) per example, about K times a forward pass for K classes, so
``batch_size`` (default: the classifier's) may need lowering for wide networks. Everything is
batched over examples with :func:`~trustlab.core.batching.run_batches` and deterministic.

Bounds always describe the network in eval mode: batch norm with its running statistics and
dropout as the identity, also when :func:`worst_case_logits` is called on a module in train mode
(certified training).
"""

from __future__ import annotations

import math
import operator
import time
import weakref
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import fx, nn

from trustlab.core.batching import run_batches
from trustlab.core.exceptions import InputError
from trustlab.models.classifier import Classifier
from trustlab.models.scripted import HookableScript

METHODS = ("ibp", "crown-ibp")
ERR_METHOD = "method must be one of {methods}, got {got!r}"
ERR_UNSUPPORTED = "cannot bound this model: unsupported {what}: {items} (supported: see trustlab.robustness.bounds)"
ERR_TRACE = "cannot bound this model: torch.fx could not trace it ({reason})"
ERR_SCRIPTED = (
    "cannot bound a TorchScript model: bounds trace the Python module with torch.fx; pass the nn.Module itself "
    "(from Python: Classifier(module, ...)), or its state dict with --arch for a trustlab architecture"
)


class Interval(NamedTuple):
    """Elementwise lower and upper bounds of one tensor."""

    lower: torch.Tensor
    upper: torch.Tensor


# ---------------------------------------------------------------------------- graph --------

_MONOTONE_MODULES = (
    nn.ReLU,
    nn.LeakyReLU,
    nn.Sigmoid,
    nn.Tanh,
    nn.ELU,
    nn.SELU,
    nn.CELU,
    nn.Softplus,
    nn.Hardtanh,  # ReLU6 is a Hardtanh
    nn.Hardsigmoid,
    nn.LogSigmoid,
    nn.Softsign,
)
_POOL_MODULES = (
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveMaxPool1d,
    nn.AdaptiveMaxPool2d,
)
_IDENTITY_MODULES = (nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.AlphaDropout)
_MONOTONE_FUNCTIONS = {
    torch.relu,
    F.relu,
    torch.sigmoid,
    F.sigmoid,
    torch.tanh,
    F.tanh,
    F.leaky_relu,
    F.elu,
    F.selu,
    F.celu,
    F.softplus,
    F.hardtanh,
    F.relu6,
    F.hardsigmoid,
    F.logsigmoid,
    F.softsign,
}
_POOL_FUNCTIONS = {
    F.max_pool1d,
    F.max_pool2d,
    F.avg_pool1d,
    F.avg_pool2d,
    F.adaptive_avg_pool1d,
    F.adaptive_avg_pool2d,
    torch.avg_pool1d,
    torch.max_pool1d,
    torch.max_pool2d,
}
_IDENTITY_FUNCTIONS = {F.dropout, torch.dropout}
_RESHAPE_FUNCTIONS = {torch.flatten, torch.reshape, torch.squeeze, torch.unsqueeze}
_MONOTONE_METHODS = {"relu", "sigmoid", "tanh"}
_RESHAPE_METHODS = {"flatten", "view", "reshape", "squeeze", "unsqueeze", "contiguous"}
_ADD_FUNCTIONS = {operator.add, torch.add, operator.iadd}
_SUB_FUNCTIONS = {operator.sub, torch.sub, operator.isub}
_SCALE_FUNCTIONS = {operator.mul, torch.mul, operator.truediv, torch.div, operator.neg, torch.neg}


def _name(target: Any) -> str:
    module = getattr(target, "__module__", None) or ""
    name = getattr(target, "__name__", repr(target))
    return f"{module}.{name}" if module else name


class _Op(NamedTuple):
    node: fx.Node
    kind: str  # input, linear, conv, batchnorm, monotone, pool, identity, reshape, add, sub, scale,
    # concrete, output
    module: nn.Module | None


class _Graph:
    """A traced module with a bounding rule for every node."""

    def __init__(self, module: nn.Module) -> None:
        if any(isinstance(m, torch.jit.ScriptModule | HookableScript) for m in module.modules()):
            raise InputError(ERR_SCRIPTED)
        try:
            graph = fx.Tracer().trace(module)
        except Exception as exc:  # noqa: BLE001 -- any tracing failure becomes one clear line
            raise InputError(ERR_TRACE.format(reason=f"{type(exc).__name__}: {str(exc).splitlines()[0]}")) from None
        modules = dict(module.named_modules())
        ops: list[_Op] = []
        unsupported: list[str] = []
        inputs = 0
        for node in graph.nodes:
            kind, sub, problem = _classify(node, modules)
            if problem:
                unsupported.append(problem)
            if kind == "input":
                inputs += 1
            ops.append(_Op(node, kind, sub))
        if inputs != 1:
            unsupported.append(f"forward with {inputs} inputs (one tensor expected)")
        if unsupported:
            raise InputError(
                ERR_UNSUPPORTED.format(
                    what="module or operation" if len(unsupported) == 1 else "modules or operations",
                    items="; ".join(dict.fromkeys(unsupported)),
                )
            )
        self.ops = ops
        self.output = next(op.node.args[0] for op in ops if op.kind == "output")
        if not isinstance(self.output, fx.Node):
            raise InputError(ERR_UNSUPPORTED.format(what="output", items="forward must return one tensor"))


def _classify(node: fx.Node, modules: dict[str, nn.Module]) -> tuple[str, nn.Module | None, str | None]:
    if node.op == "placeholder":
        return "input", None, None
    if node.op == "output":
        return "output", None, None
    if node.op == "get_attr":
        return "concrete", None, None
    if node.op == "call_module":
        sub = modules[node.target]
        where = f"module {node.target} ({type(sub).__name__})"
        if isinstance(sub, nn.Linear):
            return "linear", sub, None
        if isinstance(sub, nn.Conv2d):
            if sub.padding_mode != "zeros":
                return "conv", sub, f"{where} with padding_mode={sub.padding_mode!r}"
            return "conv", sub, None
        if isinstance(sub, nn.BatchNorm1d | nn.BatchNorm2d):
            if sub.running_mean is None or sub.running_var is None:
                return "batchnorm", sub, f"{where} without running statistics"
            return "batchnorm", sub, None
        if isinstance(sub, nn.LeakyReLU) and sub.negative_slope < 0:
            return "monotone", sub, f"{where} with a negative slope (not monotone)"
        if isinstance(sub, nn.ELU | nn.CELU) and sub.alpha < 0:
            return "monotone", sub, f"{where} with a negative alpha (not monotone)"
        if isinstance(sub, _MONOTONE_MODULES):
            return "monotone", sub, None
        if isinstance(sub, _POOL_MODULES):
            if getattr(sub, "return_indices", False):
                return "pool", sub, f"{where} with return_indices"
            return "pool", sub, None
        if isinstance(sub, _IDENTITY_MODULES):
            return "identity", sub, None
        if isinstance(sub, nn.Flatten):
            return "reshape", sub, None
        return "unsupported", sub, where
    if node.op == "call_function":
        target = node.target
        if target in _MONOTONE_FUNCTIONS:
            return "monotone", None, None
        if target in _POOL_FUNCTIONS:
            return "pool", None, None
        if target in _IDENTITY_FUNCTIONS:
            return "identity", None, None
        if target in _RESHAPE_FUNCTIONS:
            return "reshape", None, None
        if target in _ADD_FUNCTIONS:
            return "add", None, None
        if target in _SUB_FUNCTIONS:
            return "sub", None, None
        if target in _SCALE_FUNCTIONS:
            return "scale", None, None
        if target in (getattr, operator.getitem):
            return "concrete", None, None
        return "unsupported", None, f"function {_name(target)}"
    if node.op == "call_method":
        if node.target in _MONOTONE_METHODS:
            return "monotone", None, None
        if node.target in _RESHAPE_METHODS:
            return "reshape", None, None
        if node.target in ("size", "dim"):
            return "concrete", None, None
        if node.target in ("add", "sub", "mul", "div"):
            return {"add": "add", "sub": "sub"}.get(node.target, "scale"), None, None
        return "unsupported", None, f"method .{node.target}()"
    return "unsupported", None, f"node {node.op} {node.target}"


_GRAPHS: weakref.WeakKeyDictionary[nn.Module, _Graph] = weakref.WeakKeyDictionary()


def _graph(module: nn.Module) -> _Graph:
    """The traced graph of ``module`` (cached: tracing does not depend on weights)."""
    graph = _GRAPHS.get(module)
    if graph is None:
        graph = _Graph(module)
        _GRAPHS[module] = graph
    return graph


def check_supported(model: Classifier | nn.Module) -> None:
    """Raise an InputError naming every module or operation the bounds cannot handle."""
    _graph(model.module if isinstance(model, Classifier) else model)


# ------------------------------------------------------------------------- IBP ---------------


def _concrete(value: Any) -> Any:
    """A concrete stand-in for size queries: an interval answers with its lower tensor (nested
    lists, tuples and dicts are mapped; an Interval is a tuple too, so it is checked first)."""
    if isinstance(value, Interval):
        return value.lower
    if isinstance(value, list | tuple):
        return type(value)(_concrete(v) for v in value)
    if isinstance(value, dict):
        return {k: _concrete(v) for k, v in value.items()}
    return value


def _load(env: dict[fx.Node, Any], arg: Any) -> Any:
    return fx.node.map_arg(arg, lambda n: env[n])


def _affine_interval(box: Interval, apply, apply_abs) -> Interval:
    """Interval of ``apply(x)`` for an affine map: centre through ``apply``, radius through |W|."""
    centre = (box.upper + box.lower) / 2
    radius = (box.upper - box.lower) / 2
    mid = apply(centre)
    rad = apply_abs(radius)
    return Interval(mid - rad, mid + rad)


def _bn_affine(bn: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """Eval-mode batch norm as ``scale * x + shift`` per channel."""
    scale = torch.rsqrt(bn.running_var + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight
    shift = -bn.running_mean * scale
    if bn.bias is not None:
        shift = shift + bn.bias
    return scale, shift


def _channel_view(t: torch.Tensor, ndim: int) -> torch.Tensor:
    """Per-channel vector shaped to broadcast over (N, C, ...) tensors of ``ndim`` dims."""
    return t.reshape((1, -1) + (1,) * (ndim - 2))


def _ibp_node(op: _Op, env: dict[fx.Node, Any]) -> Any:
    node, kind, sub = op.node, op.kind, op.module
    args = _load(env, node.args)
    kwargs = _load(env, node.kwargs)
    box = args[0]
    if kind == "linear":
        return _affine_interval(box, sub, lambda r: F.linear(r, sub.weight.abs()))
    if kind == "conv":
        conv = sub
        return _affine_interval(
            box,
            conv,
            lambda r: F.conv2d(r, conv.weight.abs(), None, conv.stride, conv.padding, conv.dilation, conv.groups),
        )
    if kind == "batchnorm":
        scale, shift = _bn_affine(sub)
        s, b = _channel_view(scale, box.lower.ndim), _channel_view(shift, box.lower.ndim)
        return _affine_interval(box, lambda c: c * s + b, lambda r: r * s.abs())
    if kind in ("monotone", "pool", "identity", "reshape"):
        if kind == "identity":
            return box
        if node.op == "call_module":
            return Interval(sub(box.lower), sub(box.upper))
        if node.op == "call_method":
            rest = _concrete(args[1:])
            return Interval(
                getattr(box.lower, node.target)(*rest, **kwargs), getattr(box.upper, node.target)(*rest, **kwargs)
            )
        rest = _concrete(args[1:])
        if node.target is F.leaky_relu:
            slope = rest[0] if rest else kwargs.get("negative_slope", 0.01)
            if slope < 0:
                raise InputError(f"cannot bound leaky_relu with a negative slope {slope} (not monotone)")
        return Interval(node.target(box.lower, *rest, **kwargs), node.target(box.upper, *rest, **kwargs))
    if kind in ("add", "sub"):
        a, b = args[0], args[1] if len(args) > 1 else kwargs.get("other")
        alpha = kwargs.get("alpha", 1)
        if len(args) > 2:
            alpha = args[2]
        sign = 1 if kind == "add" else -1
        return _add(a, b, sign * alpha)
    if kind == "scale":
        return _scale(node, args, kwargs)
    raise InputError(f"cannot bound node {node.name} ({kind})")  # unreachable: refused at trace time


def _add(a: Any, b: Any, alpha: float) -> Interval:
    """Interval of ``a + alpha * b`` (either may be a constant)."""
    if not isinstance(a, Interval):
        a = Interval(torch.as_tensor(a), torch.as_tensor(a))
    if not isinstance(b, Interval):
        b = Interval(torch.as_tensor(b), torch.as_tensor(b))
    if alpha >= 0:
        return Interval(a.lower + alpha * b.lower, a.upper + alpha * b.upper)
    return Interval(a.lower + alpha * b.upper, a.upper + alpha * b.lower)


def _scale_factor(node: fx.Node, args: tuple, kwargs: dict) -> float:
    """The number an interval is multiplied by in a scale node (InputError if not a number)."""
    target = node.target
    if target in (operator.neg, torch.neg) or (node.op == "call_method" and target == "neg"):
        return -1.0
    divide = target in (operator.truediv, torch.div) or (node.op == "call_method" and target == "div")
    if isinstance(args[0], Interval) and len(args) > 1:
        other = args[1]
    elif len(args) > 1 and isinstance(args[1], Interval) and not divide:
        other = args[0]
    else:
        raise InputError(f"cannot bound {node.name}: only multiplication or division of a bounded tensor by a number")
    if isinstance(other, Interval) or (isinstance(other, torch.Tensor) and other.numel() != 1):
        raise InputError(f"cannot bound {node.name}: only multiplication or division of a bounded tensor by a number")
    if divide and kwargs.get("rounding_mode") is not None:
        raise InputError(f"cannot bound {node.name}: division with rounding")
    value = float(other)
    return 1.0 / value if divide else value


def _scale(node: fx.Node, args: tuple, kwargs: dict) -> Interval:
    factor = _scale_factor(node, args, kwargs)
    box = args[0] if isinstance(args[0], Interval) else args[1]
    lo, hi = box.lower * factor, box.upper * factor
    return Interval(lo, hi) if factor >= 0 else Interval(hi, lo)


class _Prepared:
    """A classifier's traced graph and normalisation as elementwise ``scale * x + shift``."""

    def __init__(self, model: Classifier) -> None:
        self.model = model
        self.graph = _graph(model.module)
        std = model._std_dev
        mean = model._mean_dev
        self.scale = None if std is None else 1.0 / std
        self.shift = None
        if mean is not None:
            self.shift = -mean if std is None else -mean / std

    def input_box(self, x: torch.Tensor, eps: torch.Tensor) -> Interval:
        """The pixel-space box: ``[x - eps, x + eps]`` clipped to the classifier's bounds."""
        radius = eps.reshape((-1,) + (1,) * (x.ndim - 1))
        lower, upper = x - radius, x + radius
        if self.model.bounds is not None:
            lower = lower.clamp(self.model.bounds[0], self.model.bounds[1])
            upper = upper.clamp(self.model.bounds[0], self.model.bounds[1])
        return Interval(lower, upper)

    def normalise(self, box: Interval) -> Interval:
        lower, upper = box
        if self.shift is not None and self.scale is None:
            return Interval(lower + self.shift, upper + self.shift)
        if self.scale is not None:  # std > 0: increasing
            shift = 0.0 if self.shift is None else self.shift
            return Interval(lower * self.scale + shift, upper * self.scale + shift)
        return box

    def ibp(self, pixel_box: Interval, spec: torch.Tensor | None) -> tuple[dict[fx.Node, Any], Interval]:
        """Every node's interval, and the interval of ``spec @ logits`` (the logits when None).

        With a spec whose last layer is ``Linear``, the spec is folded into that layer first.
        """
        env: dict[fx.Node, Any] = {}
        out = self.graph.output
        for op in self.graph.ops:
            node = op.node
            if op.kind == "input":
                env[node] = self.normalise(pixel_box)
            elif op.kind == "output":
                break
            elif node is out and spec is not None and op.kind == "linear":
                env[node] = _margin_layer(env[node.args[0]], op.module, spec)
                return env, env[node]
            elif op.kind == "concrete" or not any(isinstance(env[n], Interval) for n in node.all_input_nodes):
                env[node] = _evaluate_concrete(op, env, self.model.module)
            else:
                env[node] = _ibp_node(op, env)
        logits = env[out]
        if not isinstance(logits, Interval):
            raise InputError("cannot bound this model: its output does not depend on its input")
        if spec is None:
            return env, logits
        return env, _affine_interval(
            logits,
            lambda c: torch.einsum("nsk,nk->ns", spec, c),
            lambda r: torch.einsum("nsk,nk->ns", spec.abs(), r),
        )


def _evaluate_concrete(op: _Op, env: dict[fx.Node, Any], root: nn.Module) -> Any:
    """A node that computes a constant, or asks for a size: intervals stand in by their lower end."""
    node = op.node
    if node.op == "get_attr":
        return _get_attr(root, str(node.target))
    args = _concrete(_load(env, node.args))
    kwargs = _concrete(_load(env, node.kwargs))
    if node.op == "call_method":
        return getattr(args[0], node.target)(*args[1:], **kwargs)
    if node.op == "call_module":
        return op.module(*args, **kwargs)
    return node.target(*args, **kwargs)


def _get_attr(root: nn.Module, target: str) -> Any:
    value: Any = root
    for part in target.split("."):
        value = getattr(value, part)
    return value


def _margin_layer(box: Interval, linear: nn.Linear, spec: torch.Tensor) -> Interval:
    """Interval of ``spec @ (W h + b)`` with ``W' = spec W`` and ``b' = spec b`` formed first."""
    weight = torch.einsum("nsk,ki->nsi", spec, linear.weight)
    centre = (box.upper + box.lower) / 2
    radius = (box.upper - box.lower) / 2
    mid = torch.einsum("nsi,ni->ns", weight, centre)
    if linear.bias is not None:
        mid = mid + torch.einsum("nsk,k->ns", spec, linear.bias)
    rad = torch.einsum("nsi,ni->ns", weight.abs(), radius)
    return Interval(mid - rad, mid + rad)


# ------------------------------------------------------------------------ CROWN --------------


def _pair(v: Any) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _sum_rest(t: torch.Tensor) -> torch.Tensor:
    """Sum over every dim after (example, spec row)."""
    return t.flatten(2).sum(2)


def _concretise(a: torch.Tensor, box: Interval) -> torch.Tensor:
    """Lower bound of ``a . h`` over ``h`` in ``box``: (N, S)."""
    lower, upper = box.lower.unsqueeze(1), box.upper.unsqueeze(1)
    return _sum_rest(a.clamp(min=0) * lower + a.clamp(max=0) * upper)


def _relu_relaxation(box: Interval, slope: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Linear bounds of LeakyReLU(``slope``) on ``box``: ``low * z <= f(z) <= up * z + up_bias``."""
    lower, upper = box
    active, inactive = lower >= 0, upper <= 0
    crossing = ~active & ~inactive
    width = (upper - lower).clamp(min=1e-12)
    chord = (upper - slope * lower) / width
    up = torch.where(active, torch.ones_like(lower), torch.where(inactive, torch.full_like(lower, slope), chord))
    up_bias = torch.where(crossing, (slope - chord) * lower, torch.zeros_like(lower))
    adaptive = torch.where(upper >= -lower, torch.ones_like(lower), torch.full_like(lower, slope))
    low = torch.where(active, torch.ones_like(lower), torch.where(inactive, torch.full_like(lower, slope), adaptive))
    return low.detach(), up, up_bias


def _leaky_slope(op: _Op) -> float | None:
    """The leak of a ReLU-like node (0 for ReLU), or None for other activations."""
    sub, node = op.module, op.node
    if isinstance(sub, nn.ReLU) or node.target in (torch.relu, F.relu, "relu"):
        return 0.0
    if isinstance(sub, nn.LeakyReLU):
        return float(sub.negative_slope)
    return None


def _maxpool_backward(a: torch.Tensor, pool: nn.MaxPool2d, box: Interval) -> tuple[torch.Tensor, torch.Tensor]:
    """DeepPoly-style max-pool relaxation pushed back: (coefficients on the input, constant)."""
    kernel, stride = _pair(pool.kernel_size), _pair(pool.stride or pool.kernel_size)
    padding, dilation = _pair(pool.padding), _pair(pool.dilation)
    lower, upper = box
    n, c, h, w = lower.shape
    pads = (padding[1], padding[1], padding[0], padding[0])

    def windows(t: torch.Tensor) -> torch.Tensor:
        t = F.pad(t, pads, value=-math.inf) if any(pads) else t
        cols = F.unfold(t, kernel, dilation=dilation, stride=stride)
        return cols.reshape(n, c, kernel[0] * kernel[1], -1)

    low_w, up_w = windows(lower), windows(upper)
    best = low_w.argmax(2, keepdim=True)  # (n, c, 1, L)
    best_low = low_w.gather(2, best).squeeze(2)
    up_max = up_w.max(2).values
    others = up_w.scatter(2, best, -math.inf).max(2).values
    dominant = best_low >= others
    s = a.shape[1]
    a = a.reshape(n, s, c, -1)
    pos, neg = a.clamp(min=0), a.clamp(max=0)
    coef = pos + neg * dominant.unsqueeze(1)
    const = _sum_rest(neg * (~dominant).unsqueeze(1) * up_max.unsqueeze(1))
    index = best.unsqueeze(1).expand(n, s, c, 1, coef.shape[-1])
    spread = torch.zeros(n, s, c, kernel[0] * kernel[1], coef.shape[-1], dtype=a.dtype, device=a.device)
    spread = spread.scatter(3, index, coef.unsqueeze(3))
    folded = F.fold(
        spread.reshape(n * s, c * kernel[0] * kernel[1], -1),
        (h, w),
        kernel,
        dilation=dilation,
        padding=padding,
        stride=stride,
    )
    return folded.reshape(n, s, c, h, w), const


def _conv_backward(a: torch.Tensor, conv: nn.Conv2d, in_shape: torch.Size) -> torch.Tensor:
    """``A`` on a conv's output pushed to its input with ``conv_transpose2d``."""
    n, s = a.shape[:2]
    flat = a.reshape(n * s, *a.shape[2:])
    kernel = conv.weight.shape[2:]
    out_pad = []
    for d in range(2):
        produced = (
            (flat.shape[2 + d] - 1) * conv.stride[d] - 2 * conv.padding[d] + conv.dilation[d] * (kernel[d] - 1) + 1
        )
        out_pad.append(in_shape[1 + d] - produced)
    back = F.conv_transpose2d(
        flat, conv.weight, None, conv.stride, conv.padding, tuple(out_pad), conv.groups, conv.dilation
    )
    return back.reshape(n, s, *in_shape)


def _avgpool_backward(a: torch.Tensor, pool: nn.AvgPool2d, in_shape: torch.Size) -> torch.Tensor:
    """Average pooling is a depthwise convolution with weights 1/k^2: its transpose."""
    channels = in_shape[0]
    kernel, stride, padding = _pair(pool.kernel_size), _pair(pool.stride or pool.kernel_size), _pair(pool.padding)
    weight = torch.full((channels, 1, *kernel), 1.0 / (kernel[0] * kernel[1]), dtype=a.dtype, device=a.device)
    n, s = a.shape[:2]
    flat = a.reshape(n * s, *a.shape[2:])
    out_pad = [in_shape[1 + d] - ((flat.shape[2 + d] - 1) * stride[d] - 2 * padding[d] + kernel[d]) for d in range(2)]
    back = F.conv_transpose2d(flat, weight, None, stride, padding, tuple(out_pad), channels)
    return back.reshape(n, s, *in_shape)


def _linear_avgpool(pool: nn.Module) -> bool:
    return (
        isinstance(pool, nn.AvgPool2d)
        and not pool.ceil_mode
        and pool.divisor_override is None
        and (pool.count_include_pad or _pair(pool.padding) == (0, 0))
    )


def _crown(prepared: _Prepared, env: dict[fx.Node, Any], pixel_box: Interval, spec: torch.Tensor) -> torch.Tensor:
    """Lower bound of ``spec @ logits`` over the box: one backward linear-relaxation pass (N, S)."""
    graph = prepared.graph
    coeffs: dict[fx.Node, torch.Tensor] = {graph.output: spec}
    const = torch.zeros(spec.shape[:2], dtype=spec.dtype, device=spec.device)

    def push(arg: Any, a: torch.Tensor) -> None:
        if isinstance(arg, fx.Node) and isinstance(env.get(arg), Interval):
            coeffs[arg] = coeffs[arg] + a if arg in coeffs else a

    for op in reversed(graph.ops):
        node = op.node
        if node not in coeffs:
            continue
        a = coeffs.pop(node)
        kind, sub = op.kind, op.module
        first = node.args[0] if node.args else None
        if kind == "input":
            if prepared.scale is not None:
                if prepared.shift is not None:
                    const = const + _sum_rest(a * prepared.shift)
                a = a * prepared.scale
            elif prepared.shift is not None:
                const = const + _sum_rest(a * prepared.shift)
            const = const + _concretise(a, pixel_box)
        elif kind == "linear":
            push(first, a.matmul(sub.weight))
            if sub.bias is not None:
                const = const + a.matmul(sub.bias)
        elif kind == "conv" and not isinstance(sub.padding, str):
            push(first, _conv_backward(a, sub, env[first].lower.shape[1:]))
            if sub.bias is not None:
                const = const + a.flatten(3).sum(3).matmul(sub.bias)
        elif kind == "batchnorm":
            scale, shift = _bn_affine(sub)
            ndim = a.ndim - 1
            const = const + _sum_rest(a * _channel_view(shift, ndim).unsqueeze(0))
            push(first, a * _channel_view(scale, ndim).unsqueeze(0))
        elif kind == "monotone" and _leaky_slope(op) is not None:
            low, up, up_bias = _relu_relaxation(env[first], _leaky_slope(op))
            pos, neg = a.clamp(min=0), a.clamp(max=0)
            push(first, pos * low.unsqueeze(1) + neg * up.unsqueeze(1))
            const = const + _sum_rest(neg * up_bias.unsqueeze(1))
        elif kind == "pool" and isinstance(sub, nn.MaxPool2d) and not sub.ceil_mode:
            back, extra = _maxpool_backward(a, sub, env[first])
            push(first, back)
            const = const + extra
        elif kind == "pool" and sub is not None and _linear_avgpool(sub):
            push(first, _avgpool_backward(a, sub, env[first].lower.shape[1:]))
        elif kind == "identity":
            push(first, a)
        elif kind == "reshape":
            push(first, a.reshape(a.shape[:2] + env[first].lower.shape[1:]))
        elif kind in ("add", "sub"):
            const = const + _crown_add(node, env, a, push, kind)
        elif kind == "scale":
            args = _load(env, node.args)
            factor = _scale_factor(node, args, _load(env, node.kwargs))
            target = node.args[0] if isinstance(args[0], Interval) else node.args[1]
            push(target, a * factor)
        else:  # no linear relaxation here: bound this node's term by its IBP interval
            const = const + _concretise(a, env[node])
    return const


def _crown_add(node: fx.Node, env: dict, a: torch.Tensor, push, kind: str) -> torch.Tensor:
    """Push ``A`` through ``x + alpha * y`` (either a constant); return the constant's term."""
    kwargs = _load(env, node.kwargs)
    alpha = node.args[2] if len(node.args) > 2 else kwargs.get("alpha", 1)
    alpha = alpha * (1 if kind == "add" else -1)
    left = node.args[0]
    right = node.args[1] if len(node.args) > 1 else node.kwargs.get("other")
    const = torch.zeros(a.shape[:2], dtype=a.dtype, device=a.device)
    for arg, factor in ((left, 1.0), (right, alpha)):
        value = env[arg] if isinstance(arg, fx.Node) else arg
        if isinstance(value, Interval):
            push(arg, a * factor)
        else:
            term = a * (factor * torch.as_tensor(value, dtype=a.dtype, device=a.device))
            const = const + _sum_rest(term)
    return const


# ------------------------------------------------------------------------ API ----------------


def check_method(method: str) -> str:
    """``method`` if it is a bound this module computes ("ibp" or "crown-ibp"), else an InputError."""
    if method not in METHODS:
        raise InputError(ERR_METHOD.format(methods=", ".join(METHODS), got=method))
    return method


def margin_spec(y: torch.Tensor, num_classes: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``C`` with ``C[n, j] = e_{y_n} - e_j``: ``C @ logits`` are the margins ``z_y - z_j`` (row y is 0)."""
    eye = torch.eye(num_classes, dtype=dtype, device=y.device)
    return eye[y].unsqueeze(1) - eye.unsqueeze(0)


def _spec_lower(prepared: _Prepared, x: torch.Tensor, eps: torch.Tensor, spec: torch.Tensor, method: str):
    """Lower bound of ``spec @ logits`` over the ball (differentiable; one batch on the device)."""
    box = prepared.input_box(x, eps)
    if method == "ibp":
        return prepared.ibp(box, spec)[1].lower
    env, _ = prepared.ibp(box, None)
    return _crown(prepared, env, box, spec)


def _per_example_eps(model: Classifier, eps: Any, n: int) -> torch.Tensor:
    """``eps`` as a float tensor of length n: a number or one value per example, each in range."""
    from trustlab.robustness.evaluate import check_eps

    if isinstance(eps, torch.Tensor) and eps.ndim > 0:
        if eps.shape != (n,):
            raise InputError(f"eps must be a number or hold one value per example ({n}), got shape {tuple(eps.shape)}")
        if not (torch.isfinite(eps).all() and (eps >= 0).all()):
            raise InputError("eps values must be finite and >= 0")
        if eps.numel():
            check_eps(model, "linf", float(eps.max()))
        return eps.detach().to(torch.float32)
    return torch.full((n,), check_eps(model, "linf", eps), dtype=torch.float32)


def _prepare_call(model: Classifier, x: Any, eps: Any, method: str):
    if not isinstance(model, Classifier):
        raise InputError(f"model must be a trustlab Classifier, got {type(model).__name__}")
    check_method(method)
    model.require_gradients("bound propagation (it needs the model's weights)")
    prepared = _Prepared(model)
    x = model.validate(x)
    return prepared, x, _per_example_eps(model, eps, x.shape[0])


def margin_lower_bounds(
    model: Classifier,
    x: Any,
    y: Any,
    eps: Any,
    *,
    method: str = "ibp",
    batch_size: int | None = None,
    show_progress: bool = False,
) -> torch.Tensor:
    """Certified lower bounds of the margins ``z_y - z_j`` over the L-inf ball of radius ``eps``
    (a number or one per example) around each input, clipped to the input bounds: (N, K).

    The true class's own column is ``+inf`` (its margin is 0 by definition and certifies nothing),
    so ``(bounds > 0).all(1)`` is the certificate. ``batch_size`` defaults to ``model.batch_size``.
    """
    prepared, x, eps = _prepare_call(model, x, eps, method)
    n = x.shape[0]
    y = model.validate_labels(y, n)
    k = model.num_classes

    def bound(start: int, stop: int) -> dict[str, torch.Tensor]:
        xb, yb, eb = (t[start:stop].to(model.device) for t in (x, y, eps))
        with torch.no_grad():
            return {"margins": _margin_lower(prepared, xb, yb, eb, method).cpu()}

    out = run_batches(
        bound, n, batch_size or model.batch_size, desc=f"margin bounds ({method})", show_progress=show_progress
    )
    return out.get("margins", torch.zeros(0, k))


def logit_bounds(
    model: Classifier,
    x: Any,
    eps: Any,
    *,
    method: str = "ibp",
    batch_size: int | None = None,
    show_progress: bool = False,
) -> Interval:
    """Certified lower and upper bounds of every logit over the L-inf ball: an :class:`Interval` of (N, K)."""
    prepared, x, eps = _prepare_call(model, x, eps, method)
    n, k = x.shape[0], model.num_classes

    def bound(start: int, stop: int) -> dict[str, torch.Tensor]:
        xb, eb = x[start:stop].to(model.device), eps[start:stop].to(model.device)
        with torch.no_grad():
            if method == "ibp":
                _, box = prepared.ibp(prepared.input_box(xb, eb), None)
                return {"lower": box.lower.cpu(), "upper": box.upper.cpu()}
            eye = torch.eye(k, device=model.device)
            spec = torch.cat([eye, -eye]).unsqueeze(0).expand(xb.shape[0], 2 * k, k)
            low = _spec_lower(prepared, xb, eb, spec, method)
        return {"lower": low[:, :k].cpu(), "upper": (-low[:, k:]).cpu()}

    out = run_batches(
        bound, n, batch_size or model.batch_size, desc=f"logit bounds ({method})", show_progress=show_progress
    )
    if not out:
        return Interval(torch.zeros(0, k), torch.zeros(0, k))
    return Interval(out["lower"], out["upper"])


def certified(
    model: Classifier,
    x: Any,
    y: Any,
    eps: Any,
    method: str = "ibp",
    *,
    batch_size: int | None = None,
    show_progress: bool = False,
) -> torch.Tensor:
    """Boolean (N,): every margin's lower bound is positive, so no perturbation within ``eps``
    flips the prediction. Examples misclassified without perturbation are never certified."""
    prepared, x, eps_t = _prepare_call(model, x, eps, method)
    n = x.shape[0]
    y = model.validate_labels(y, n)

    def check(start: int, stop: int) -> dict[str, torch.Tensor]:
        xb, yb = x[start:stop].to(model.device), y[start:stop].to(model.device)
        with torch.no_grad():
            ok = _certify_batch(prepared, xb, yb, eps_t[start:stop].to(model.device), method)
        return {"certified": ok.cpu()}

    out = run_batches(check, n, batch_size or model.batch_size, desc=f"certify ({method})", show_progress=show_progress)
    return out["certified"].bool() if out else torch.zeros(0, dtype=torch.bool)


def _margin_lower(prepared: _Prepared, x, y, eps, method: str) -> torch.Tensor:
    """(N, K) lower bounds of ``z_y - z_j`` for one batch, ``+inf`` in the true class's column."""
    low = _spec_lower(prepared, x, eps, margin_spec(y, prepared.model.num_classes), method)
    return low.scatter(1, y[:, None], math.inf)


def _certify_batch(prepared: _Prepared, x, y, eps, method: str) -> torch.Tensor:
    correct = prepared.model.forward(x).argmax(1) == y
    return correct & (_margin_lower(prepared, x, y, eps, method) > 0).all(1)


class IntervalCertifier:
    """Bounds for certified training: ``worst_case_logits`` is what ``trustlab.models.train``
    calls (its ``certifier=``). ``method``: "ibp" (Gowal et al. 2018) or "crown-ibp" (Zhang et al.
    2020); with "crown-ibp", ``beta`` mixes the two lower bounds, ``beta * crown_ibp + (1 - beta) *
    ibp`` (Zhang et al. ramp beta from 1 to 0; a fixed value here)."""

    def __init__(self, *, method: str = "ibp", beta: float = 1.0) -> None:
        self.method = check_method(method)
        if not 0.0 <= beta <= 1.0:
            raise InputError(f"beta must lie in [0, 1], got {beta}")
        self.beta = float(beta)

    def __repr__(self) -> str:
        return f"IntervalCertifier(method={self.method!r}" + (
            f", beta={self.beta:g})" if self.method == "crown-ibp" else ")"
        )

    def worst_case_logits(self, model: Classifier, x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
        """Differentiable (N, K) logits of the worst case in the ball: ``-lower(z_y - z_j)`` for
        j != y and 0 for y; their cross-entropy is Gowal et al.'s robust loss."""
        prepared = _Prepared(model)
        eps_t = torch.full((x.shape[0],), float(eps), device=x.device)
        spec = margin_spec(y, model.num_classes)
        if self.method == "ibp" or self.beta == 0.0:
            low = _spec_lower(prepared, x, eps_t, spec, "ibp")
        else:
            box = prepared.input_box(x, eps_t)
            env, _ = prepared.ibp(box, None)
            low = _crown(prepared, env, box, spec)
            if self.beta < 1.0:
                low = self.beta * low + (1 - self.beta) * prepared.ibp(box, spec)[1].lower
        return -low


# --------------------------------------------------------------------- radius ----------------


@dataclass(frozen=True)
class CertifiedRadius:
    """Per-example certified L-inf radius (tensors of length N), found by bisection.

    ``radius`` is the bracket's lower end: the largest eps at which the example was certified
    (0 when misclassified or never certified, ``eps_max`` when certified there); the true certified
    radius of the method lies in ``[lower, upper)`` to within ``tol``.
    """

    radius: torch.Tensor
    upper: torch.Tensor
    clean_wrong: torch.Tensor
    labels: torch.Tensor
    method: str
    eps_max: float
    tol: float
    seconds: float

    def certified_accuracy(self, eps: float) -> float:
        """Share of examples certified at ``eps`` (a lower bound: radii are bracket lower ends)."""
        if eps > self.eps_max:
            raise InputError(f"eps {eps} is above the search's eps_max {self.eps_max}; nothing is known there")
        if not self.radius.numel():
            return float("nan")
        return float((~self.clean_wrong & (self.radius >= eps)).float().mean())

    def curve(self, grid: torch.Tensor | list[float]) -> torch.Tensor:
        """Certified accuracy at each eps of ``grid`` (all <= eps_max)."""
        grid = torch.as_tensor(grid, dtype=self.radius.dtype)
        if (grid > self.eps_max).any():
            raise InputError(f"grid values must be <= eps_max {self.eps_max}")
        ok = ~self.clean_wrong[None, :] & (self.radius[None, :] >= grid[:, None])
        return ok.float().mean(1)


def certified_radius(
    model: Classifier,
    x: Any,
    y: Any,
    *,
    eps_max: float = 0.5,
    tol: float = 1 / 512,
    method: str = "ibp",
    batch_size: int | None = None,
    show_progress: bool = True,
) -> CertifiedRadius:
    """Largest certified L-inf radius per example by batched bisection on a per-example eps.

    Every round bounds only the examples whose bracket is still wider than ``tol``. IBP's
    certificate is monotone in eps (a larger box gives looser intervals), so its bisection is
    exact to ``tol``; CROWN-IBP's adaptive relaxations need not be, but the radius returned was
    certified either way (a certificate at r covers every smaller ball).
    """
    from trustlab.robustness.evaluate import check_eps

    if not (isinstance(eps_max, int | float) and eps_max > 0 and math.isfinite(eps_max)) or not tol > 0:
        raise InputError(f"eps_max and tol must be positive and finite, got {eps_max} and {tol}")
    check_eps(model, "linf", eps_max, option="eps_max")
    prepared, x, _ = _prepare_call(model, x, 0.0, method)
    n = x.shape[0]
    y = model.validate_labels(y, n)
    start_time = time.perf_counter()

    def search(start: int, stop: int) -> dict[str, torch.Tensor]:
        xb, yb = x[start:stop].to(model.device), y[start:stop].to(model.device)
        with torch.no_grad():
            return {k: v.cpu() for k, v in _bisect(prepared, xb, yb, float(eps_max), float(tol), method).items()}

    out = run_batches(
        search, n, batch_size or model.batch_size, desc=f"certified radius ({method})", show_progress=show_progress
    )
    if not out:
        out = {"lower": torch.zeros(0), "upper": torch.zeros(0), "clean_wrong": torch.zeros(0, dtype=torch.bool)}
    return CertifiedRadius(
        radius=out["lower"],
        upper=out["upper"],
        clean_wrong=out["clean_wrong"].bool(),
        labels=y.cpu(),
        method=method,
        eps_max=float(eps_max),
        tol=float(tol),
        seconds=time.perf_counter() - start_time,
    )


def _bisect(prepared: _Prepared, x, y, eps_max: float, tol: float, method: str) -> dict[str, torch.Tensor]:
    n = x.shape[0]
    clean_wrong = prepared.model.forward(x).argmax(1) != y
    lower = torch.zeros(n, device=x.device)
    upper = torch.full_like(lower, eps_max)
    rows = torch.nonzero(~clean_wrong).squeeze(1)
    if rows.numel():  # certified at eps_max: the radius is eps_max
        at_max = _certify_batch(prepared, x[rows], y[rows], upper[rows], method)
        lower[rows[at_max]] = eps_max
    upper = torch.where(clean_wrong, torch.zeros_like(upper), upper)
    active = ~clean_wrong & (upper - lower > tol)
    while active.any():
        rows = torch.nonzero(active).squeeze(1)
        mid = (lower[rows] + upper[rows]) / 2
        ok = _certify_batch(prepared, x[rows], y[rows], mid, method)
        lower[rows] = torch.where(ok, mid, lower[rows])
        upper[rows] = torch.where(ok, upper[rows], mid)
        active = active & (upper - lower > tol)
    return {"lower": lower, "upper": upper, "clean_wrong": clean_wrong}
