"""Backdoor security: Neural Cleanse batched over every label, repair by unlearning or pruning,
and a poisoning kit that makes backdoored test subjects.

Names are re-exported lazily.
"""

from __future__ import annotations

from trustlab.core.lazy import lazy_exports

_EXPORTS = {
    "Trigger": "trustlab.backdoor.triggers",
    "patch_trigger": "trustlab.backdoor.triggers",
    "blend_trigger": "trustlab.backdoor.triggers",
    "save_trigger": "trustlab.backdoor.triggers",
    "load_trigger": "trustlab.backdoor.triggers",
    "poison": "trustlab.backdoor.poisoning",
    "train_infected": "trustlab.backdoor.poisoning",
    "attack_success_rate": "trustlab.backdoor.poisoning",
    "CleanseSettings": "trustlab.backdoor.cleanse",
    "reverse_triggers": "trustlab.backdoor.cleanse",
    "check_scannable": "trustlab.backdoor.cleanse",
    "neural_cleanse": "trustlab.backdoor.cleanse",
    "anomaly_index": "trustlab.backdoor.cleanse",
    "flagged_labels": "trustlab.backdoor.cleanse",
    "BackdoorScanResult": "trustlab.backdoor.cleanse",
    "unlearn": "trustlab.backdoor.repair",
    "prune": "trustlab.backdoor.repair",
    "RepairResult": "trustlab.backdoor.repair",
    "run_backdoor_scan": "trustlab.backdoor.checks",
    "run_backdoor_repair": "trustlab.backdoor.checks",
}

__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
