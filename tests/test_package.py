"""Package-level promises: lazy imports, optional dependencies stay optional."""

import subprocess
import sys

import trustlab


def _python(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120).stdout


def test_import_is_lazy():
    loaded = _python(
        "import sys, trustlab; print(sorted(m for m in ('torch', 'matplotlib', 'pandas') if m in sys.modules))"
    )
    assert loaded.strip() == "[]"


def test_core_works_without_optional_dependencies():
    code = (
        "import sys\n"
        "optional = ('fastapi', 'uvicorn', 'ray', 'onnx', 'onnxruntime', 'captum', 'foolbox', 'art', 'shap', 'lime')\n"
        "for name in optional:\n"
        "    sys.modules[name] = None  # make any import of them fail\n"
        "sys.modules['click'] = None  # the checks and the demo are usable without the command line\n"
        "import trustlab.audit.demo, trustlab.models.checks, trustlab.robustness.checks, trustlab.ood.checks\n"
        "import trustlab.explain.checks, trustlab.studies.checks\n"
        "del sys.modules['click']\n"
        "import trustlab.cli, trustlab.models, trustlab.data, trustlab.report.html\n"
        "from trustlab.capabilities import load_views; load_views()\n"
        "print('ok')\n"
    )
    assert _python(code).strip() == "ok"


def test_public_api_resolves():
    assert trustlab.load_dataset.__module__ == "trustlab.data.registry"
    assert trustlab.Classifier.__name__ == "Classifier"
    assert set(trustlab.__all__) <= set(dir(trustlab))
