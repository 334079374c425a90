"""TorchScript models behind a Python module tree, so that forward hooks work.

A loaded TorchScript module (``RecursiveScriptModule``) refuses forward hooks, which Grad-CAM,
feature-space OOD detectors and the layer probe need. :class:`HookableScript` mirrors it: one
Python ``nn.Module`` per scripted submodule, under the same names and sharing the same parameter
tensors. A module with submodules replays its TorchScript graph node by node in Python (ATen
operators through ``torch.ops``, submodule calls through ``nn.Module.__call__``, so hooks fire); a
module without submodules runs its own compiled ``forward``. Scripted ``ReLU`` submodules become
``nn.ReLU``, which guided backpropagation hooks. A graph the replay does not know (loops, calls to
scripted functions) leaves its module opaque: it runs compiled, and what it calls is not seen.

:func:`hookable_script` builds the mirror and checks it against the compiled module on one input;
if they differ, or the top-level graph cannot be replayed, it returns the compiled module and why.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

_AGREE_ATOL, _AGREE_RTOL = 1e-5, 1e-4


class UnsupportedGraph(Exception):
    """A TorchScript graph uses a node the replay does not implement."""


class _Step:
    __slots__ = ("fn", "inputs", "outputs")

    def __init__(self, fn: Callable[..., Any], inputs: list[int], outputs: list[int]) -> None:
        self.fn, self.inputs, self.outputs = fn, inputs, outputs


class _Block:
    """Compiled nodes of one graph or block: constants, steps, and the values it returns."""

    def __init__(self, params: list[int], steps: list[_Step], returns: list[int], constants: dict[int, Any]) -> None:
        self.params, self.steps, self.returns, self.constants = params, steps, returns, constants


def _attr(obj: Any, name: str) -> Any:
    if isinstance(obj, nn.Module):
        if name == "training":
            return obj.training
        for table in (obj._modules, obj._parameters, obj._buffers):
            if name in table:
                return table[name]
        if isinstance(obj, HookableScript):
            return getattr(obj.script, name)
    return getattr(obj, name)


def _call_method(name: str) -> Callable[..., Any]:
    def call(module: Any, *args: Any) -> Any:
        if name == "forward" and isinstance(module, nn.Module):
            return module(*args)  # through __call__: hooks fire
        target = module.script if isinstance(module, HookableScript) else module
        return getattr(target, name)(*args)

    return call


def _aten(node: torch._C.Node) -> Callable[..., Any]:
    text = node.schema()
    if text == "(no schema)":
        raise UnsupportedGraph(node.kind())
    schema = torch._C.parse_schema(text)
    try:
        packet = getattr(torch.ops.aten, schema.name.split("::", 1)[1])
        op = getattr(packet, schema.overload_name or "default")
    except (AttributeError, RuntimeError):
        raise UnsupportedGraph(node.kind()) from None
    names = [a.name for a in schema.arguments]
    keyword = [a.kwarg_only for a in schema.arguments]
    if len(names) != node.inputsSize():
        raise UnsupportedGraph(node.kind())
    if not any(keyword):
        return op

    def call(*args: Any) -> Any:
        positional = [a for a, k in zip(args, keyword) if not k]
        named = {n: a for n, a, k in zip(names, args, keyword) if k}
        return op(*positional, **named)

    return call


def _function(node: torch._C.Node) -> Callable[..., Any]:
    """A scripted function constant: only ``torch.nn.functional``'s, which take the same arguments
    compiled as in Python (``F.relu(x, inplace)``, ``F._max_pool2d(...)``)."""
    qualified = node.output().type().annotation_str
    prefix = "__torch__.torch.nn.functional."
    name = qualified[len(prefix) :] if qualified.startswith(prefix) else ""
    fn = getattr(torch.nn.functional, name, None) if name and "." not in name else None
    if fn is None:
        raise UnsupportedGraph(f"a call to the scripted function {qualified}")
    return fn


def _call_function(fn: Callable[..., Any], *args: Any) -> Any:
    return fn(*args)


def _unpack(*args: Any) -> Any:
    return tuple(args[0])


_PRIM: dict[str, Callable[..., Any]] = {
    "prim::ListConstruct": lambda *a: list(a),
    "prim::TupleConstruct": lambda *a: tuple(a),
    "prim::ListUnpack": _unpack,
    "prim::TupleUnpack": _unpack,
    "prim::TupleIndex": lambda t, i: t[i],
    "prim::NumToTensor": lambda v: torch.tensor(v),
    "prim::device": lambda t: t.device,
    "prim::dtype": lambda t: t.dtype,
    "aten::Int": int,
    "aten::Float": float,
}


def _compile(params: list[torch._C.Value], nodes: Any, returns: list[torch._C.Value]) -> _Block:
    steps: list[_Step] = []
    constants: dict[int, Any] = {}
    for node in nodes:
        kind = node.kind()
        outputs = [v.unique() for v in node.outputs()]
        inputs = [v.unique() for v in node.inputs()]
        if kind == "prim::Constant":
            is_function = node.output().type().kind() == "FunctionType"
            constants[outputs[0]] = _function(node) if is_function else node.output().toIValue()
            continue
        if kind == "prim::GetAttr":
            name = node.s("name")
            fn = lambda obj, name=name: _attr(obj, name)  # noqa: E731
        elif kind == "prim::CallMethod":
            fn = _call_method(node.s("name"))
        elif kind == "prim::CallFunction":
            fn = _call_function
        elif kind == "prim::If":
            fn = _branch([_compile([], b.nodes(), list(b.outputs())) for b in node.blocks()])
        elif kind in _PRIM:
            fn = _PRIM[kind]
        elif kind.startswith("aten::"):
            fn = _aten(node)
        else:
            raise UnsupportedGraph(kind)
        steps.append(_Step(fn, inputs, outputs))
    return _Block([p.unique() for p in params], steps, [r.unique() for r in returns], constants)


def _branch(blocks: list[_Block]) -> Callable[..., Any]:
    """``prim::If``: run the chosen block in the enclosing environment (passed as the first argument)."""

    def run(env: dict[int, Any], condition: Any) -> Any:
        block = blocks[0] if bool(condition) else blocks[1]
        out = _run(block, env)
        return out[0] if len(out) == 1 else out

    run.needs_env = True  # type: ignore[attr-defined]
    return run


def _run(block: _Block, env: dict[int, Any]) -> tuple[Any, ...]:
    env.update(block.constants)
    for step in block.steps:
        args = [env[k] for k in step.inputs]
        result = step.fn(env, *args) if getattr(step.fn, "needs_env", False) else step.fn(*args)
        if len(step.outputs) == 1:
            env[step.outputs[0]] = result
        elif step.outputs:
            for key, value in zip(step.outputs, result, strict=True):
                env[key] = value
    return tuple(env[k] for k in block.returns)


class HookableScript(nn.Module):
    """A TorchScript module as a tree of Python modules with the same names (see the module doc).

    Parameters and buffers are the scripted module's own tensors, so ``state_dict`` keys, weight
    digests and in-place weight changes are shared; ``script`` is the compiled module (what a
    guard saves). Deep copies copy the compiled module and mirror the copy.
    """

    def __init__(self, script: torch.jit.ScriptModule) -> None:
        super().__init__()
        object.__setattr__(self, "script", script)  # not a child: its submodules appear once, mirrored
        self.original_name = script.original_name
        self.unsupported: str | None = None
        for name, param in script.named_parameters(recurse=False):
            # the scripted module's own tensor object (a loaded archive's are plain tensors, which
            # register_parameter refuses): gradients and in-place updates land on what it computes with
            self._parameters[name] = param
        for name, buffer in script.named_buffers(recurse=False):
            self.register_buffer(name, buffer)
        children = list(script.named_children())
        for name, child in children:
            self.add_module(name, _mirror(child))
        self._program: _Block | None = None
        if children:
            graph = script.graph
            try:
                params = list(graph.inputs())
                self._program = _compile(params, graph.nodes(), list(graph.outputs()))
            except UnsupportedGraph as exc:
                self.unsupported = str(exc)

    def forward(self, *args: Any) -> Any:
        if self._program is None:
            return self.script.forward(*args)
        env: dict[int, Any] = dict(zip(self._program.params, (self, *args), strict=True))
        out = _run(self._program, env)
        return out[0] if len(out) == 1 else out

    def train(self, mode: bool = True) -> HookableScript:
        super().train(mode)
        self.script.train(mode)
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> HookableScript:
        twin = HookableScript(copy.deepcopy(self.script, memo))
        return twin.train(self.training)

    def extra_repr(self) -> str:
        return f"TorchScript {self.original_name}" + ("" if self.unsupported is None else " (compiled, opaque)")


def _mirror(script: torch.jit.ScriptModule) -> nn.Module:
    plain = not list(script.parameters()) and not list(script.buffers()) and not list(script.children())
    if plain and script.original_name == "ReLU":
        return nn.ReLU()  # stateless: what guided backpropagation recognises
    return HookableScript(script)


def hookable_script(script: torch.jit.ScriptModule, example: torch.Tensor) -> tuple[nn.Module, str | None]:
    """``script`` mirrored by :class:`HookableScript` if the mirror gives the same output on
    ``example``; else ``script`` itself and the reason (for messages)."""
    try:
        mirror = HookableScript(script).train(script.training)
    except Exception as exc:  # a scripted module type the mirror cannot read
        return script, f"its modules cannot be mirrored ({type(exc).__name__}: {exc})"
    if mirror.unsupported is not None:
        return script, f"its TorchScript graph uses {mirror.unsupported}, which trustlab cannot replay"
    try:
        with torch.no_grad():
            expected, got = script(example), mirror(example)
    except Exception:  # the compiled module fails on the example too: keep it, its own error will speak
        return script, "it could not be run on a probe input"
    if not (
        isinstance(got, torch.Tensor)
        and isinstance(expected, torch.Tensor)
        and got.shape == expected.shape
        and torch.allclose(got, expected, atol=_AGREE_ATOL, rtol=_AGREE_RTOL)
    ):
        return script, "replaying its TorchScript graph in Python did not reproduce its output"
    return mirror, None
