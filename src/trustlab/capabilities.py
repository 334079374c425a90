"""The one list of capability packages.

A capability package (robustness, ood, ...) holds its algorithms, its typed results, a ``views``
module (report section, CLI summary lines, scorecard scores for each result kind) and a
``checks`` module (model + data + options -> results in a run directory). Adding a capability
means adding its package and its name here; the report, the CLI and the audit find its views
through this list and never import it by name.
"""

from __future__ import annotations

import importlib

# in dependency order: a capability may use those before it (robustness uses Grad-CAM from
# explain; studies combine the others), never one after it
CAPABILITIES = ("explain", "robustness", "ood", "backdoor", "fairness", "shift", "studies")
# packages whose results appear in reports: the model's own (card, training, accuracy), the
# capabilities', and the audit's (scorecard, failed checks)
VIEW_PACKAGES = ("models", *CAPABILITIES, "audit")


def load_views() -> None:
    """Import every package's ``views`` module, which registers its result kinds and their views."""
    for package in VIEW_PACKAGES:
        importlib.import_module(f"trustlab.{package}.views")
