"""The dependency rule of DESIGN.md, read from the imports themselves (not trusted to convention),
and the promise that every result kind has a view and survives JSON."""

from __future__ import annotations

import ast
import dataclasses
import math
import typing
from pathlib import Path

import pytest

import trustlab
from trustlab.capabilities import CAPABILITIES, VIEW_PACKAGES, load_views
from trustlab.core.results import Record, Result, record_type, result_kinds
from trustlab.core.views import view_for

SOURCE = Path(trustlab.__file__).parent
# lower layers first; a package may import its own layer's earlier members only where said below
LAYERS = [("core",), ("data",), ("models",), CAPABILITIES, ("audit", "report", "serve", "distributed"), ("cli",)]
TOP_LEVEL = {"_version", "capabilities"}  # modules beside the packages, importable from anywhere above core


def _imports() -> dict[str, set[tuple[str, str]]]:
    """package -> {(imported package, importing file)}, from every import statement, lazy ones included."""
    found: dict[str, set[tuple[str, str]]] = {}
    for path in SOURCE.rglob("*.py"):
        parts = path.relative_to(SOURCE).parts
        if len(parts) == 1:
            continue
        package = parts[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            else:
                continue
            for name in names:
                if name.startswith("trustlab.") and name.split(".")[1] != package:
                    found.setdefault(package, set()).add((name.split(".")[1], str(path.relative_to(SOURCE))))
    return found


def _rank(package: str) -> tuple[int, int]:
    for layer, members in enumerate(LAYERS):
        if package in members:
            return layer, members.index(package)
    raise AssertionError(f"package {package} is in no layer of this test; place it in DESIGN.md's map")


def test_packages_import_only_downwards():
    wrong = []
    for package, imported in _imports().items():
        for target, where in imported:
            if target in TOP_LEVEL:
                if package == "core":
                    wrong.append(f"{where} imports trustlab.{target}")
                continue
            (layer, position), (target_layer, target_position) = _rank(package), _rank(target)
            same_layer_ok = layer == target_layer and LAYERS[layer] == CAPABILITIES and target_position < position
            audit_uses_report = package == "audit" and target == "report"
            if not (target_layer < layer or same_layer_ok or audit_uses_report):
                wrong.append(f"{where} imports trustlab.{target}")
    assert not wrong, "imports against the dependency rule:\n" + "\n".join(sorted(wrong))


def test_report_and_core_name_no_capability():
    offenders = sorted(
        where
        for package in ("report", "core")
        for target, where in _imports().get(package, ())
        if target in CAPABILITIES
    )
    assert offenders == []


def test_the_rule_tests_see_violations(tmp_path, monkeypatch):
    """The checkers are not vacuous: a core module importing models, and a report module naming a
    capability, are both caught."""
    fake = tmp_path / "trustlab"
    for folder, text in (("core", "import trustlab.models.classifier\n"), ("report", "from trustlab.ood import x\n")):
        (fake / folder).mkdir(parents=True)
        (fake / folder / "bad.py").write_text(text)
    monkeypatch.setattr(f"{__name__}.SOURCE", fake)
    with pytest.raises(AssertionError, match="core/bad.py imports trustlab.models"):
        test_packages_import_only_downwards()
    with pytest.raises(AssertionError, match="report/bad.py"):
        test_report_and_core_name_no_capability()


def test_every_capability_has_views_and_checks():
    for package in CAPABILITIES:
        assert (SOURCE / package / "views.py").is_file() and (SOURCE / package / "checks.py").is_file(), package
    assert set(CAPABILITIES) <= set(VIEW_PACKAGES)


def _example(annotation, depth: int = 0):
    """A value of the annotated type (the first alternative of a union) for a round trip."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is float:
        return math.inf if depth % 2 else 0.25  # non-finite floats must survive JSON too
    if annotation is int:
        return 3
    if annotation is str:
        return "x"
    if annotation is bool:
        return True
    if annotation is typing.Any:
        return {"k": (1, 2.5, "v")}  # JSON lists come back as tuples
    if isinstance(annotation, type) and issubclass(annotation, Record):
        return _instance(annotation, depth + 1)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_example(args[0], depth + 1) for _ in range(2))
        return tuple(_example(a, depth + 1) for a in args)
    if origin is dict:
        return {"a": _example(args[1], depth + 1)}
    if args:  # a union such as float | None
        return _example(next(a for a in args if a is not type(None)), depth)
    raise AssertionError(f"no example for {annotation!r}")


def _instance(cls: type[Record], depth: int = 0) -> Record:
    hints = typing.get_type_hints(cls)
    return cls(**{f.name: _example(hints[f.name], depth) for f in dataclasses.fields(cls)})


def test_every_result_kind_has_a_view_and_round_trips_through_json():
    load_views()
    kinds = [k for k in result_kinds() if record_type(k).__module__.startswith("trustlab.")]  # not tests' own
    assert {"accuracy", "robustness", "alarm", "attributions", "robust_vs_natural"} <= set(kinds)
    for kind in kinds:
        cls = record_type(kind)
        assert view_for(kind) is not None, f"result kind {kind} has no view"
        result = _instance(cls)
        assert Result.from_json(result.to_json()) == result, kind


@pytest.mark.parametrize("package", [*CAPABILITIES, "audit", "ood"])
def test_each_capability_exports_its_public_api(package):
    import importlib

    module = importlib.import_module(f"trustlab.{package}")
    assert module.__all__, f"trustlab.{package} exports nothing"
    for name in module.__all__:
        assert getattr(module, name) is not None, f"trustlab.{package}.{name}"


def test_every_public_function_and_class_has_a_docstring():
    missing = []
    for path in SOURCE.rglob("*.py"):
        parts = path.relative_to(SOURCE).parts
        if any(p.startswith("_") and p != "__init__.py" for p in parts):
            continue
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef | ast.ClassDef) and not node.name.startswith("_"):
                if not ast.get_docstring(node):
                    missing.append(f"{path.relative_to(SOURCE)}:{node.lineno} {node.name}")
    assert not missing, "public names without a docstring:\n" + "\n".join(sorted(missing))
