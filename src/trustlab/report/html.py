"""The self-contained HTML report, rendered from a run directory's results only.

Figures are embedded as base64 PNG (the file works offline and by e-mail) and also saved in
``figures/`` beside it.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from trustlab._version import __version__
from trustlab.capabilities import load_views
from trustlab.core.files import atomic_write_bytes, atomic_write_text
from trustlab.core.results import Result
from trustlab.core.views import render_sections
from trustlab.report.run import MANIFEST_FILE, REPORT_FILE, read_results

COLLAPSE_AFTER = 12  # tables with more rows start folded (click the caption to open)
_ENV = Environment(loader=PackageLoader("trustlab.report", "templates"), autoescape=select_autoescape(["html", "j2"]))


def render_report(
    results: dict[str, Result], manifest: dict[str, Any] | None = None, *, title: str = "trustlab audit"
) -> tuple[str, dict[str, bytes]]:
    """HTML text and the figures it embeds (name -> PNG bytes)."""
    load_views()
    sections = render_sections(results)
    figures = {f"{fig.name}.png": fig.png for s in sections for fig in s.figures}
    html = _ENV.get_template("report.html.j2").render(
        title=title,
        sections=sections,
        manifest=manifest or {},
        version=__version__,
        collapse_after=COLLAPSE_AFTER,
        b64=lambda data: base64.b64encode(data).decode("ascii"),
    )
    return html, figures


def write_report(run_dir: str | Path, *, out: str | Path | None = None, title: str = "trustlab audit") -> Path:
    """Render ``run_dir``'s results into ``report.html`` (or ``out``) and its figures into ``figures/``."""
    run_dir = Path(run_dir)
    results = read_results(run_dir)
    manifest_file = run_dir / MANIFEST_FILE
    manifest = json.loads(manifest_file.read_text()) if manifest_file.is_file() else {}
    html, figures = render_report(results, manifest, title=title)
    for name, png in figures.items():
        atomic_write_bytes(run_dir / "figures" / name, png)
    return atomic_write_text(Path(out) if out else run_dir / REPORT_FILE, html)
