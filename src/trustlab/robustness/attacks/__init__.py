"""Batched attacks in pixel space; ``make_attack(name, **hyperparameters)`` builds one by name."""

from __future__ import annotations

from typing import Any

from trustlab.core.exceptions import UnknownNameError
from trustlab.robustness.attacks.apgd import APGD
from trustlab.robustness.attacks.base import Attack, AttackResult, lp_norms, margin, project
from trustlab.robustness.attacks.fgsm import FGSM
from trustlab.robustness.attacks.fmn import FMN
from trustlab.robustness.attacks.pgd import PGD
from trustlab.robustness.attacks.square import Square

ATTACKS: dict[str, type[Attack]] = {cls.name: cls for cls in (FGSM, PGD, APGD, FMN, Square)}


def make_attack(name: str, **hyperparameters: Any) -> Attack:
    """Build attack ``name`` (``fgsm``, ``pgd``, ``apgd``, ``fmn``, ``square``) with its hyperparameters."""
    if name not in ATTACKS:
        raise UnknownNameError(f"unknown attack {name!r}; expected one of: {', '.join(ATTACKS)}")
    return ATTACKS[name](**hyperparameters)


__all__ = [
    "APGD",
    "ATTACKS",
    "Attack",
    "AttackResult",
    "FGSM",
    "FMN",
    "PGD",
    "Square",
    "lp_norms",
    "make_attack",
    "margin",
    "project",
]
