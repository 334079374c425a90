"""ONNX models as differentiable torch modules (extra ``onnx``: ``pip install "trustlab[onnx]"``).

trustlab converts ONNX graphs itself rather than through onnx2torch, which requires torchvision
(and with it, often, a second torch build). The operators small classifiers use are covered:
Conv (2-D), Gemm, MatMul, Add, Sub, Mul, Div, Relu, LeakyRelu, Sigmoid, Tanh, MaxPool,
AveragePool, GlobalAveragePool, GlobalMaxPool, BatchNormalization, Flatten, Reshape, Softmax,
LogSoftmax, Identity, Dropout, Constant, and the shape arithmetic exporters write for
``x.view(x.size(0), -1)`` (Shape, Gather, Unsqueeze, Concat, Slice, Transpose). Keras/TensorFlow
graphs (tf2onnx) take N x H x W x C images: they are wrapped (:class:`ChannelsLast`) so the
classifier takes N x C x H x W like every other. From scikit-learn's exporter
(skl2onnx, domain ai.onnx.ml): Scaler, LinearClassifier, TreeEnsembleClassifier, Normalizer, Cast
and ZipMap, so linear models, tree ensembles (decision trees, random forests, extra trees,
gradient boosting) and pipelines with a scaler convert too; such a graph gives probabilities
(and labels), and the module returns their logarithm as its logits. Any other operator is named
in a one-line error.

The result, :class:`OnnxGraph`, runs the nodes in the file's (topological) order. Each node is a
submodule named after the scope the exporter recorded (``/features/features.0/Conv`` becomes
``features_0``), so forward hooks, the layer probe and Grad-CAM see every layer: convolutions
are ``nn.Conv2d``, ReLUs ``nn.ReLU`` (what guided backpropagation hooks), Gemm with constant
weights ``nn.Linear``; other operators are :class:`OnnxOp` modules whose ``original_name`` is
the ONNX operator. Everything is plain torch, so gradients flow to the inputs, except through
a tree ensemble (:class:`TreeEnsemble`, all trees evaluated at once): its comparisons have no
gradients, so :func:`gives_gradients` says False and such a model gives probabilities only.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from trustlab.core.exceptions import ModelLoadError

ERR_MISSING = 'reading ONNX models needs the onnx package: pip install "trustlab[onnx]"'
ONNX_DOMAINS = ("", "ai.onnx")
ML_DOMAIN = "ai.onnx.ml"
ML_OPS = ("Scaler", "LinearClassifier", "TreeEnsembleClassifier", "Normalizer", "ZipMap")
ONNX_TYPES = {1: torch.float32, 6: torch.int32, 7: torch.int64, 9: torch.bool, 10: torch.float16, 11: torch.float64}


class OnnxOp(nn.Module):
    """One ONNX operator as a function of its inputs; constant inputs are buffers ``c0``, ``c1``..."""

    def __init__(self, op_type: str, fn: Callable[..., Any], slots: list[Any]) -> None:
        super().__init__()
        self.original_name = op_type
        self.fn = fn
        self._slots: list[str] = []  # per input: "arg", "none" or a buffer name
        for value in slots:
            if isinstance(value, torch.Tensor):
                name = f"c{len(self._buffers)}"
                self.register_buffer(name, value)
                self._slots.append(name)
            else:
                self._slots.append(value)

    def forward(self, *args: Any) -> Any:
        given = iter(args)
        values = [
            next(given) if slot == "arg" else None if slot == "none" else getattr(self, slot) for slot in self._slots
        ]
        return self.fn(*values)

    def extra_repr(self) -> str:
        return self.original_name


class OnnxGraph(nn.Module):
    """An ONNX graph's nodes as submodules, run in the file's order (see the module doc)."""

    def __init__(self, input_name: str, output_name: str, steps: list[tuple[str, nn.Module, list[str], str]]) -> None:
        super().__init__()
        self._input, self._output = input_name, output_name
        self._steps: list[tuple[str, list[str], str]] = []
        for name, module, inputs, output in steps:
            self.add_module(name, module)
            self._steps.append((name, inputs, output))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        env: dict[str, Any] = {self._input: x}
        for name, inputs, output in self._steps:
            env[output] = self._modules[name](*[env[i] for i in inputs])
        return env[self._output]


# ---------------------------------------------------------------------- operators ----------------
class _Unsupported(Exception):
    pass


def _pair(values: Any, default: int, n: int = 2) -> tuple[int, ...]:
    values = list(values) if values else [default] * n
    if len(values) != n:
        raise _Unsupported("only 2-D convolutions and pools")
    return tuple(int(v) for v in values)


def _padding(attrs: dict[str, Any]) -> tuple[tuple[int, int], tuple[int, int, int, int] | None]:
    """Symmetric padding for the module, or (0, 0) and a ZeroPad2d's (left, right, top, bottom)."""
    if attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET", b"VALID", "VALID"):
        raise _Unsupported("auto_pad SAME_*")
    top, left, bottom, right = _pair(attrs.get("pads"), 0, 4)
    if (top, left) == (bottom, right):
        return (top, left), None
    return (0, 0), (left, right, top, bottom)


def _padded(module: nn.Module, pad: tuple[int, int, int, int] | None) -> nn.Module:
    return module if pad is None else nn.Sequential(nn.ZeroPad2d(pad), module)


def _conv(node, attrs, inputs, const) -> tuple[nn.Module, list[str]]:
    weight, bias = const(inputs[1]), const(inputs[2]) if len(inputs) > 2 and inputs[2] else None
    if weight is None or weight.ndim != 4:
        raise _Unsupported("Conv with non-constant or non-2-D weights")
    padding, pad = _padding(attrs)
    groups = int(attrs.get("group", 1))
    conv = nn.Conv2d(
        weight.shape[1] * groups,
        weight.shape[0],
        tuple(weight.shape[2:]),
        stride=_pair(attrs.get("strides"), 1),
        padding=padding,
        dilation=_pair(attrs.get("dilations"), 1),
        groups=groups,
        bias=bias is not None,
    )
    with torch.no_grad():
        conv.weight.copy_(weight)
        if bias is not None:
            conv.bias.copy_(bias)
    return _padded(conv, pad), inputs[:1]


def _pool(kind: str):
    def convert(node, attrs, inputs, const):
        padding, pad = _padding(attrs)
        kernel = _pair(attrs.get("kernel_shape"), 1)
        stride = _pair(attrs.get("strides"), 1)
        ceil = bool(attrs.get("ceil_mode", 0))
        if kind == "max":
            pool = nn.MaxPool2d(kernel, stride, padding, dilation=_pair(attrs.get("dilations"), 1), ceil_mode=ceil)
        else:
            include = bool(attrs.get("count_include_pad", 0))
            pool = nn.AvgPool2d(kernel, stride, padding, ceil_mode=ceil, count_include_pad=include)
        return _padded(pool, pad), inputs[:1]

    return convert


def _gemm(node, attrs, inputs, const):
    alpha, beta = float(attrs.get("alpha", 1.0)), float(attrs.get("beta", 1.0))
    trans_a, trans_b = int(attrs.get("transA", 0)), int(attrs.get("transB", 0))
    b = const(inputs[1])
    c = const(inputs[2]) if len(inputs) > 2 and inputs[2] else None
    has_c = len(inputs) > 2 and bool(inputs[2])
    if b is not None and not trans_a and (not has_c or c is not None):
        weight = alpha * (b if trans_b else b.T)
        linear = nn.Linear(weight.shape[1], weight.shape[0], bias=has_c)
        with torch.no_grad():
            linear.weight.copy_(weight)
            if has_c:
                linear.bias.copy_(beta * torch.broadcast_to(c.reshape(-1) if c.ndim else c, (weight.shape[0],)))
        return linear, inputs[:1]

    def gemm(a, b, c=None):
        out = alpha * ((a.T if trans_a else a) @ (b.T if trans_b else b))
        return out if c is None else out + beta * c

    return _op(node, gemm, inputs, const)


def _matmul(node, attrs, inputs, const):
    b = const(inputs[1])
    if b is not None and b.ndim == 2 and const(inputs[0]) is None:
        linear = nn.Linear(b.shape[0], b.shape[1], bias=False)
        with torch.no_grad():
            linear.weight.copy_(b.T)
        return linear, inputs[:1]
    return _op(node, torch.matmul, inputs, const)


def _op(node, fn: Callable[..., Any], inputs: list[str], const) -> tuple[nn.Module, list[str]]:
    """A functional operator; constant inputs become buffers, missing optional ones None."""
    slots: list[Any] = []
    runtime = []
    for name in inputs:
        value = const(name) if name else None
        if not name:
            slots.append("none")
        elif value is not None:
            slots.append(value)
        else:
            slots.append("arg")
            runtime.append(name)
    return OnnxOp(node.op_type, fn, slots), runtime


def _softmax(log: bool):
    def convert(node, attrs, inputs, const, opset):
        axis = int(attrs.get("axis", -1 if opset >= 13 else 1))
        fn = torch.log_softmax if log else torch.softmax
        if opset >= 13:
            return _op(node, lambda x: fn(x, dim=axis), inputs, const)

        def legacy(x):  # before opset 13: softmax over everything from ``axis`` on, flattened
            return fn(x.reshape(*x.shape[:axis], -1), dim=-1).reshape(x.shape)

        return _op(node, legacy, inputs, const)

    return convert


def _reshape(node, attrs, inputs, const):
    allow_zero = bool(attrs.get("allowzero", 0))

    def reshape(x, shape):
        target = [int(v) for v in shape.tolist()]
        if not allow_zero:
            target = [x.shape[i] if v == 0 else v for i, v in enumerate(target)]
        return x.reshape(target)

    return _op(node, reshape, inputs[:2], const)


def _flatten(node, attrs, inputs, const):
    axis = int(attrs.get("axis", 1))
    if axis == 1:
        return nn.Flatten(), inputs[:1]
    return _op(node, lambda x: x.reshape(math.prod(x.shape[: axis % max(x.ndim, 1)]), -1), inputs[:1], const)


def _batchnorm(node, attrs, inputs, const):
    eps = float(attrs.get("epsilon", 1e-5))

    def batchnorm(x, scale, bias, mean, var):
        return F.batch_norm(x, mean, var, scale, bias, training=False, eps=eps)

    return _op(node, batchnorm, inputs[:5], const)


def _shape(node, attrs, inputs, const):
    start, end = attrs.get("start", 0), attrs.get("end")

    def shape(x):
        return torch.tensor(x.shape[start:end], dtype=torch.int64)

    return _op(node, shape, inputs[:1], const)


def _gather(node, attrs, inputs, const):
    axis = int(attrs.get("axis", 0))

    def gather(data, indices):
        dim = axis % data.ndim
        flat = indices.reshape(-1).long()
        flat = torch.where(flat < 0, flat + data.shape[dim], flat)
        picked = torch.index_select(data, dim, flat)
        return picked.reshape((*data.shape[:dim], *indices.shape, *data.shape[dim + 1 :]))

    return _op(node, gather, inputs[:2], const)


def _unsqueeze(node, attrs, inputs, const):
    fixed = attrs.get("axes")

    def unsqueeze(x, axes=None):
        wanted = [int(a) for a in (fixed if fixed is not None else axes.tolist())]
        rank = x.ndim + len(wanted)
        for a in sorted(a % rank for a in wanted):
            x = x.unsqueeze(a)
        return x

    return _op(node, unsqueeze, inputs[:2], const)


def _concat(node, attrs, inputs, const):
    axis = int(attrs.get("axis", 0))
    return _op(node, lambda *parts: torch.cat(parts, dim=axis), inputs, const)


def _transpose(node, attrs, inputs, const):
    perm = attrs.get("perm")
    return _op(node, lambda x: x.permute(*perm) if perm else x.permute(*reversed(range(x.ndim))), inputs[:1], const)


def _slice(node, attrs, inputs, const):
    """Slice (opset 10+): starts, ends and optional axes and steps as (constant or computed) inputs."""

    def slice_(data, starts, ends, axes=None, steps=None):
        starts, ends = starts.tolist(), ends.tolist()
        axes = list(range(len(starts))) if axes is None else axes.tolist()
        steps = [1] * len(starts) if steps is None else steps.tolist()
        index = [slice(None)] * data.ndim
        for start, end, axis, step in zip(starts, ends, axes, steps):
            if step < 1:
                raise _Unsupported("negative Slice steps")
            size = data.shape[axis]
            index[axis] = slice(max(-size, min(start, size)), max(-size, min(end, size)), step)
        return data[tuple(index)]

    return _op(node, slice_, inputs[:5], const)


def _binary(fn: Callable[..., Any]):
    return lambda node, attrs, inputs, const: _op(node, fn, inputs[:2], const)


def _scaler(node, attrs, inputs, const):
    offset = torch.tensor(attrs.get("offset", [0.0]), dtype=torch.float32)
    scale = torch.tensor(attrs.get("scale", [1.0]), dtype=torch.float32)
    return _op(node, lambda x: (x.float() - offset.to(x.device)) * scale.to(x.device), inputs, const)


def _linear_classifier(node, attrs, inputs, const):
    """ai.onnx.ml LinearClassifier: scores X W^T + b, [-s, s] for one row of two classes, then
    its post-transform; the step's output is the scores (the label output is not used)."""
    labels = attrs.get("classlabels_ints") or attrs.get("classlabels_strings") or []
    intercepts = torch.tensor(attrs.get("intercepts", [0.0]), dtype=torch.float32)
    weights = torch.tensor(attrs["coefficients"], dtype=torch.float32).reshape(len(intercepts), -1)
    transform = attrs.get("post_transform", b"NONE")
    transform = transform.decode() if isinstance(transform, bytes) else str(transform)
    if transform not in ("NONE", "LOGISTIC", "SOFTMAX"):
        raise _Unsupported(f"post_transform {transform}")
    linear = nn.Linear(weights.shape[1], weights.shape[0])
    with torch.no_grad():
        linear.weight.copy_(weights)
        linear.bias.copy_(intercepts)

    class Scores(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = linear

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            scores = self.linear(x.float())
            if scores.shape[1] == 1 and len(labels) == 2:
                scores = torch.cat([-scores, scores], dim=1)
            if transform == "LOGISTIC":
                return torch.sigmoid(scores)
            return torch.softmax(scores, dim=1) if transform == "SOFTMAX" else scores

    return Scores(), inputs[:1]


# ------------------------------------------------------------------ tree ensembles ---------------
TREE_BRANCHES = ("BRANCH_LEQ", "BRANCH_LT", "BRANCH_GTE", "BRANCH_GT", "BRANCH_EQ", "BRANCH_NEQ")
TREE_TESTS: dict[int, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    0: torch.le,
    1: torch.lt,
    2: torch.ge,
    3: torch.gt,
    4: torch.eq,
    5: torch.ne,
}
POST_TRANSFORMS = ("NONE", "LOGISTIC", "SOFTMAX", "SOFTMAX_ZERO", "PROBIT")


class TreeEnsemble(nn.Module):
    """ai.onnx.ml TreeEnsembleClassifier's scores, all trees at once: a ``[batch, trees]`` tensor of
    node indices starts at the roots and takes one step down per iteration (leaves point to
    themselves), ``depth`` iterations in all; the reached leaves' class weights are summed, the
    base values added, and the post-transform applied. Nodes are buffers: ``feature``,
    ``threshold``, ``mode`` (index into ``TREE_BRANCHES``), ``true_child``/``false_child``,
    ``missing_true`` (where a NaN goes), ``roots``, ``leaf_weights`` ([nodes, columns]) and ``base``.

    ``pair`` is "" normally; for two classes scored by one column s it is "one_minus" ([1 - s, s])
    or "negate" ([-s, s]), applied before the post-transform. Comparisons give no gradients:
    a graph holding this module gives probabilities only (see :func:`gives_gradients`)."""

    def __init__(
        self,
        nodes: dict[str, torch.Tensor],
        depth: int,
        leaf_weights: torch.Tensor,
        base: torch.Tensor,
        post_transform: str,
        pair: str = "",
    ) -> None:
        super().__init__()
        self.original_name = "TreeEnsembleClassifier"
        for name in ("feature", "threshold", "mode", "true_child", "false_child", "missing_true", "roots"):
            self.register_buffer(name, nodes[name])
        self.register_buffer("leaf_weights", leaf_weights)
        self.register_buffer("base", base)
        self.depth = depth
        self.post_transform = post_transform
        self.pair = pair
        self._tests = sorted({m for m in nodes["mode"].tolist() if m >= 0})  # the comparisons present

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(x.shape[0], -1).to(self.threshold.dtype)
        at = self.roots.expand(x.shape[0], -1)
        for _ in range(self.depth):
            values, threshold = x.gather(1, self.feature[at]), self.threshold[at]
            if len(self._tests) == 1:
                go_true = TREE_TESTS[self._tests[0]](values, threshold)
            else:
                mode = self.mode[at]
                go_true = torch.zeros_like(values, dtype=torch.bool)
                for code in self._tests:
                    go_true |= (mode == code) & TREE_TESTS[code](values, threshold)
            go_true |= values.isnan() & self.missing_true[at]  # a NaN fails every test but !=
            at = torch.where(go_true, self.true_child[at], self.false_child[at])
        scores = self.leaf_weights[at].sum(dim=1) + self.base
        if self.pair:
            s = scores[:, 0]
            scores = torch.stack([1 - s if self.pair == "one_minus" else -s, s], dim=1)
        return _post_transform(scores, self.post_transform).float()

    def extra_repr(self) -> str:
        return (
            f"trees={self.roots.numel()}, nodes={self.feature.numel()}, depth={self.depth}, "
            f"classes={2 if self.pair else self.leaf_weights.shape[1]}, post_transform={self.post_transform}"
        )


def _post_transform(scores: torch.Tensor, transform: str) -> torch.Tensor:
    if transform == "LOGISTIC":
        return torch.sigmoid(scores)
    if transform == "SOFTMAX":
        return torch.softmax(scores, dim=1)
    if transform == "SOFTMAX_ZERO":  # softmax over the non-zero scores; zeros stay (almost) zero
        top = scores.amax(dim=1, keepdim=True)
        kept = torch.where(scores.abs() > 1e-7, torch.exp(scores - top), scores * torch.exp(-top))
        total = kept.sum(dim=1, keepdim=True)
        return torch.where(total == 0, torch.full_like(kept, 1 / scores.shape[1]), kept / total)
    if transform == "PROBIT":  # the standard normal quantile (exact; onnxruntime approximates it)
        return math.sqrt(2) * torch.erfinv(2 * scores - 1)
    return scores


def gives_gradients(module: nn.Module) -> bool:
    """False when a converted graph holds an operator without gradients (a tree ensemble): its
    classifier gives probabilities only, and checks that need gradients are skipped."""
    return not any(isinstance(m, TreeEnsemble) for m in module.modules())


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _numbers(attrs: dict[str, Any], name: str, default: list[float] | None = None) -> np.ndarray:
    """A float attribute, given as a list or as ``<name>_as_tensor`` (float or double)."""
    if f"{name}_as_tensor" in attrs:
        from onnx import numpy_helper

        return numpy_helper.to_array(attrs[f"{name}_as_tensor"]).reshape(-1)
    if name in attrs:
        return np.asarray(attrs[name], dtype=np.float32)
    if default is None:
        raise _Unsupported(f"no {name}")
    return np.asarray(default, dtype=np.float32)


def _tree_nodes(attrs: dict[str, Any]) -> tuple[dict[str, torch.Tensor], int, dict[tuple[int, int], int]]:
    """The nodes as flat tensors (children as positions in them, a leaf its own child), the
    depth of the deepest tree, and the position of each (tree id, node id)."""
    trees, ids = list(attrs.get("nodes_treeids", [])), list(attrs.get("nodes_nodeids", []))
    count = len(ids)
    if not count or len(trees) != count:
        raise _Unsupported("nodes_treeids and nodes_nodeids must name the same, non-empty, nodes")
    where = {(t, n): i for i, (t, n) in enumerate(zip(trees, ids))}
    if len(where) != count:
        raise _Unsupported("a (tree id, node id) pair appears twice")
    modes = [_text(m) for m in attrs.get("nodes_modes", [])]
    unknown = sorted(set(modes) - {"LEAF", *TREE_BRANCHES})
    if unknown:
        raise _Unsupported(f"node mode {unknown[0]}")
    values = _numbers(attrs, "nodes_values", [0.0] * count)
    missing = list(attrs.get("nodes_missing_value_tracks_true") or [0] * count)
    columns = {"nodes_modes": modes, "nodes_values": values, "nodes_missing_value_tracks_true": missing}
    for name in ("nodes_featureids", "nodes_truenodeids", "nodes_falsenodeids"):
        columns[name] = list(attrs.get(name, []))
    wrong = [name for name, column in columns.items() if len(column) != count]
    if wrong:
        raise _Unsupported(f"{wrong[0]} has {len(columns[wrong[0]])} entries for {count} nodes")
    if any(f < 0 for f, m in zip(columns["nodes_featureids"], modes) if m != "LEAF"):
        raise _Unsupported("a negative feature id")
    true_child, false_child, is_child = list(range(count)), list(range(count)), [False] * count
    for i, (tree, mode) in enumerate(zip(trees, modes)):
        if mode == "LEAF":
            continue
        try:
            true_child[i] = where[tree, attrs["nodes_truenodeids"][i]]
            false_child[i] = where[tree, attrs["nodes_falsenodeids"][i]]
        except KeyError:
            raise _Unsupported(f"node {ids[i]} of tree {tree} points to a node that does not exist") from None
        is_child[true_child[i]] = is_child[false_child[i]] = True
    roots = {}
    for i, tree in enumerate(trees):
        if not is_child[i]:
            if tree in roots:
                raise _Unsupported(f"tree {tree} has more than one root")
            roots[tree] = i
    if set(roots) != set(trees):
        raise _Unsupported("a tree has no root (its nodes form a cycle)")
    depth, level = 0, set(roots.values())
    while any(modes[i] != "LEAF" for i in level):
        level = {c for i in level if modes[i] != "LEAF" for c in (true_child[i], false_child[i])}
        depth += 1
        if depth > count:
            raise _Unsupported("a tree's nodes form a cycle")
    precision = np.float64 if values.dtype == np.float64 else np.float32  # as the file compares
    nodes = {
        "feature": torch.tensor([0 if m == "LEAF" else f for f, m in zip(columns["nodes_featureids"], modes)]),
        "threshold": torch.from_numpy(values.astype(precision)),
        "mode": torch.tensor([-1 if m == "LEAF" else TREE_BRANCHES.index(m) for m in modes]),
        "true_child": torch.tensor(true_child),
        "false_child": torch.tensor(false_child),
        "missing_true": torch.tensor([bool(m) for m in missing]),
        "roots": torch.tensor(sorted(roots.values())),
    }
    return nodes, depth, where


def _tree_ensemble_classifier(node, attrs, inputs, const):
    """ai.onnx.ml TreeEnsembleClassifier: a :class:`TreeEnsemble` giving the scores output (the
    label output is not used). Two class labels with weights for one class id only (what
    skl2onnx writes for two classes): that column's score s is the positive class's, and the
    pair is [1 - s, s] under NONE with no negative weight (probabilities) and under PROBIT, else
    [-s, s] (margins); then the post-transform, so LOGISTIC gives [1 - p, p]. This matches
    onnxruntime for NONE and LOGISTIC with class id 0 (what exporters write); for SOFTMAX,
    SOFTMAX_ZERO and PROBIT it follows ONNX's reference implementation, since onnxruntime
    leaves such a pair untransformed."""
    labels = attrs.get("classlabels_int64s") or attrs.get("classlabels_strings") or []
    if len(labels) < 2:
        raise _Unsupported("a classifier needs two class labels or more")
    transform = _text(attrs.get("post_transform", b"NONE"))
    if transform not in POST_TRANSFORMS:
        raise _Unsupported(f"post_transform {transform}")
    nodes, depth, where = _tree_nodes(attrs)
    weights = _numbers(attrs, "class_weights").astype(np.float64)
    classes = list(attrs.get("class_ids", []))
    owners = list(zip(attrs.get("class_treeids", []), attrs.get("class_nodeids", [])))
    if not (len(weights) == len(classes) == len(owners)):
        raise _Unsupported("class_treeids, class_nodeids, class_ids and class_weights differ in length")
    if any(not 0 <= c < len(labels) for c in classes):
        raise _Unsupported(f"a class id outside 0..{len(labels) - 1}")
    try:
        rows = [where[owner] for owner in owners]
    except KeyError:
        raise _Unsupported("a class weight belongs to a node that does not exist") from None
    base = _numbers(attrs, "base_values", []).astype(np.float64)
    pair = ""
    if len(labels) == 2 and len(set(classes)) == 1:  # binary, one column scored
        scored = classes[0]
        probabilities = transform == "PROBIT" or (transform == "NONE" and (weights >= 0).all())
        pair = "one_minus" if probabilities else "negate"
        columns = [0] * len(classes)
        base = base[scored : scored + 1] if len(base) == 2 else base[:1] if len(base) else np.zeros(1)
    else:
        columns = classes
        if len(base) not in (0, 1, len(labels)):
            raise _Unsupported(f"{len(base)} base_values for {len(labels)} classes")
        base = np.broadcast_to(base if len(base) else np.zeros(1), (len(labels),))
    leaf_weights = np.zeros((len(where), 1 if pair else len(labels)))
    np.add.at(leaf_weights, (rows, columns), weights)
    module = TreeEnsemble(
        nodes, depth, torch.from_numpy(leaf_weights), torch.from_numpy(np.array(base)), transform, pair
    )
    return module, inputs[:1]


def _tree_gives_probabilities(node: Any) -> bool:
    """Whether a TreeEnsembleClassifier node's scores are probabilities: a LOGISTIC or SOFTMAX
    post-transform, or none and no negative weight (the average of the leaves' class frequencies,
    as scikit-learn's forests write)."""
    from onnx.helper import get_attribute_value

    attrs = {a.name: get_attribute_value(a) for a in node.attribute}
    transform = _text(attrs.get("post_transform", b"NONE"))
    if transform != "NONE":
        return transform != "PROBIT"
    try:
        return bool((_numbers(attrs, "class_weights") >= 0).all() and (_numbers(attrs, "base_values", []) >= 0).all())
    except _Unsupported:
        return False


def _normalizer(node, attrs, inputs, const):
    norm = attrs.get("norm", b"MAX")
    norm = norm.decode() if isinstance(norm, bytes) else str(norm)
    if norm not in ("MAX", "L1", "L2"):
        raise _Unsupported(f"norm {norm}")

    def normalise(x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        if norm == "MAX":
            size = x.amax(dim=1, keepdim=True)
        else:
            size = x.abs().sum(1, keepdim=True) if norm == "L1" else x.norm(dim=1, keepdim=True)
        return x / size.clamp_min(1e-30)

    return _op(node, normalise, inputs, const)


def _cast(node, attrs, inputs, const):
    dtype = ONNX_TYPES.get(int(attrs.get("to", 1)))
    if dtype is None:
        raise _Unsupported(f"cast to ONNX type {attrs.get('to')}")
    return _op(node, lambda x: x.to(dtype), inputs, const)


def _module(factory: Callable[[dict[str, Any]], nn.Module]):
    return lambda node, attrs, inputs, const: (factory(attrs), inputs[:1])


CONVERTERS: dict[str, Callable[..., tuple[nn.Module, list[str]]]] = {
    "Conv": _conv,
    "Gemm": _gemm,
    "MatMul": _matmul,
    "Add": _binary(torch.add),
    "Sub": _binary(torch.sub),
    "Mul": _binary(torch.mul),
    "Div": _binary(torch.div),
    "Relu": _module(lambda a: nn.ReLU()),
    "LeakyRelu": _module(lambda a: nn.LeakyReLU(float(a.get("alpha", 0.01)))),
    "Sigmoid": _module(lambda a: nn.Sigmoid()),
    "Tanh": _module(lambda a: nn.Tanh()),
    "MaxPool": _pool("max"),
    "AveragePool": _pool("avg"),
    "GlobalAveragePool": _module(lambda a: nn.AdaptiveAvgPool2d(1)),
    "GlobalMaxPool": _module(lambda a: nn.AdaptiveMaxPool2d(1)),
    "BatchNormalization": _batchnorm,
    "Flatten": _flatten,
    "Reshape": _reshape,
    "Identity": _module(lambda a: nn.Identity()),
    "Dropout": _module(lambda a: nn.Identity()),
    "Shape": _shape,
    "Gather": _gather,
    "Unsqueeze": _unsqueeze,
    "Concat": _concat,
    "Transpose": _transpose,
    "Slice": _slice,
    "Scaler": _scaler,
    "Cast": _cast,
    "Normalizer": _normalizer,
}
WITH_OPSET = {"Softmax": _softmax(log=False), "LogSoftmax": _softmax(log=True)}
# outputs (label, scores): the step gives the scores, the label output is not used
CLASSIFIERS = {"LinearClassifier": _linear_classifier, "TreeEnsembleClassifier": _tree_ensemble_classifier}
SUPPORTED = sorted([*CONVERTERS, *WITH_OPSET, *CLASSIFIERS, "Constant", "ZipMap"])


def _needed(graph: Any, output: str) -> set[str]:
    """Names of the values ``output`` depends on (itself included), walking the graph back."""
    producers = {o: n for n in graph.node for o in n.output}
    needed, pending = set(), [output]
    while pending:
        name = pending.pop()
        if name in needed:
            continue
        needed.add(name)
        if name in producers:
            pending.extend(i for i in producers[name].input if i)
    return needed


def _probability_output(graph: Any) -> tuple[str, bool]:
    """The graph output a classifier's scores come from, and whether it holds probabilities.
    One output: itself. scikit-learn's two (label, probabilities): the probabilities, read
    before a ZipMap turns them into a list of dictionaries."""
    if len(graph.output) == 1:
        return graph.output[0].name, False
    producers = {o: n for n in graph.node for o in n.output}
    floats = [o.name for o in graph.output if o.type.tensor_type.elem_type in (1, 11) or o.name in producers
              and producers[o.name].op_type == "ZipMap"]  # fmt: skip
    if len(graph.output) != 2 or len(floats) != 1:
        raise _Unsupported("a classifier must give one output, or a label and probabilities")
    name = floats[0]
    if name in producers and producers[name].op_type == "ZipMap":
        name = producers[name].input[0]  # the tensor before it became dictionaries
    node = producers.get(name)  # probabilities? walk back through what keeps them so, to the scores
    while node is not None and node.op_type in ("Cast", "Identity", "Normalizer"):
        node = producers.get(node.input[0])
    if node is not None and node.op_type == "LinearClassifier":
        transform = next((a.s for a in node.attribute if a.name == "post_transform"), b"NONE")
        return name, transform != b"NONE"
    if node is not None and node.op_type == "TreeEnsembleClassifier":
        return name, _tree_gives_probabilities(node)
    return name, node is not None and node.op_type == "Softmax"


# ---------------------------------------------------------------------- reading ------------------
def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _layer_name(node: Any, index: int, taken: set[str]) -> str:
    """The exporter's scope (``/features/features.0/Conv`` -> ``features_0``), else the node's name,
    else operator and position; unique, and never an attribute of ``nn.Module``."""
    scopes = [s for s in node.name.split("/") if s]
    base = scopes[-2] if len(scopes) >= 2 else (scopes[0] if scopes else "")
    name = re.sub(r"\W", "_", base).strip("_")
    op = node.op_type.lower()
    if not name:
        name = f"{op}_{index}"
    elif name[0].isdigit() or hasattr(nn.Module, name):
        name = f"{op}_{name}"
    if name in taken:
        name = f"{name}_{op}"
    while name in taken:
        name = f"{name}_{index}"
    taken.add(name)
    return name


def read_onnx(path: Path) -> tuple[nn.Module, tuple[int, ...] | None]:
    """An ONNX file as an :class:`OnnxGraph` and the input shape it declares (without the batch
    dimension; None when not fixed). One-line ModelLoadError for anything unreadable."""
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        raise ModelLoadError(ERR_MISSING) from None
    try:
        model = onnx.load(str(path))
    except Exception as exc:  # protobuf raises DecodeError and others for a damaged file
        raise ModelLoadError(f"{path} is not a readable ONNX model ({_first_line(exc)})") from None
    graph = model.graph
    opset = max((o.version for o in model.opset_import if o.domain in ONNX_DOMAINS), default=13)
    constants: dict[str, torch.Tensor] = {
        t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in graph.initializer
    }
    inputs = [i for i in graph.input if i.name not in constants]
    try:
        output, probabilities = _probability_output(graph)
    except _Unsupported:
        output, probabilities = "", False
    if len(inputs) != 1 or not output:
        raise ModelLoadError(
            f"{path}: a classifier must take one input and give one output (or a label and probabilities), "
            f"this graph has {len(inputs)} and {len(graph.output)}"
        )
    unknown = sorted(
        {
            n.op_type
            for n in graph.node
            if n.op_type not in SUPPORTED
            or n.domain not in (*ONNX_DOMAINS, *((ML_DOMAIN,) if n.op_type in ML_OPS else ()))
        }
    )
    if unknown:
        raise ModelLoadError(
            f"{path} uses ONNX operators trustlab cannot convert: {', '.join(unknown)} "
            f"(supported: {', '.join(SUPPORTED)})"
        )
    steps: list[tuple[str, nn.Module, list[str], str]] = []
    taken: set[str] = set()
    needed = _needed(graph, output)
    for index, node in enumerate(graph.node):
        if not needed & set(node.output):  # e.g. the label branch of a scikit-learn classifier
            continue
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "Constant":
            constants[node.output[0]] = _constant(attrs, numpy_helper)
            continue
        if node.op_type == "ZipMap":  # probabilities as dictionaries: the tensor before it is the output
            continue
        produced = node.output[1] if node.op_type in CLASSIFIERS else node.output[0]
        if node.op_type not in CLASSIFIERS and len(node.output) > 1 and any(node.output[1:]):
            used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
            if used & set(node.output[1:]):
                raise ModelLoadError(f"{path}: the second output of {node.op_type} ({node.name}) is not supported")
        inputs_of = list(node.input)
        try:
            if node.op_type in WITH_OPSET:
                module, runtime = WITH_OPSET[node.op_type](node, attrs, inputs_of, constants.get, opset)
            else:
                convert = CLASSIFIERS.get(node.op_type) or CONVERTERS[node.op_type]
                module, runtime = convert(node, attrs, inputs_of, constants.get)
        except _Unsupported as exc:
            raise ModelLoadError(f"{path}: {node.op_type} node {node.name!r} is not supported ({exc})") from None
        steps.append((_layer_name(node, index, taken), module, runtime, produced))
    if probabilities:  # logits for the Classifier contract: log-probabilities keep argmax and softmax
        steps.append(
            ("log_probabilities", OnnxOp("Log", lambda p: p.clamp_min(1e-12).log(), ["arg"]), [output], "logits")
        )
        output = "logits"
    module = OnnxGraph(inputs[0].name, output, steps).eval()
    dims = inputs[0].type.tensor_type.shape.dim
    declared = tuple(int(d.dim_value) for d in dims[1:])
    fixed = len(dims) > 1 and all(d.HasField("dim_value") and d.dim_value > 0 for d in dims[1:])
    if fixed and _channels_last(declared):
        return ChannelsLast(module), (declared[2], declared[0], declared[1])
    return module, declared if fixed else None


def _channels_last(shape: tuple[int, ...]) -> bool:
    """An image input declared H x W x C (Keras's and TensorFlow's layout)."""
    return len(shape) == 3 and shape[2] in (1, 3, 4) and shape[0] > 4 and shape[1] > 4


class ChannelsLast(nn.Module):
    """A model taking N x H x W x C images (Keras, TensorFlow) seen as one taking N x C x H x W,
    the layout every trustlab check uses."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x.permute(0, 2, 3, 1))


def _constant(attrs: dict[str, Any], numpy_helper: Any) -> torch.Tensor:
    if "value" in attrs:
        return torch.from_numpy(numpy_helper.to_array(attrs["value"]).copy())
    for key, dtype in (("value_float", torch.float32), ("value_floats", torch.float32)):
        if key in attrs:
            return torch.tensor(attrs[key], dtype=dtype)
    for key in ("value_int", "value_ints"):
        if key in attrs:
            return torch.tensor(attrs[key], dtype=torch.int64)
    raise ModelLoadError(f"ONNX Constant with attributes {', '.join(attrs)} is not supported")
