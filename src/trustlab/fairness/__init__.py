"""Fairness: group metrics of a classifier's decisions (selection rates, statistical parity,
disparate impact, equal opportunity, average and equalised odds, calibration by group, Zemel's
consistency) over protected attributes and their intersections, each with a vectorised bootstrap
interval.

Names are re-exported lazily.
"""

from __future__ import annotations

from trustlab.core.lazy import lazy_exports

_EXPORTS = {
    "protected_groups": "trustlab.fairness.groups",
    "encode_groups": "trustlab.fairness.groups",
    "selection_rates": "trustlab.fairness.metrics",
    "true_positive_rates": "trustlab.fairness.metrics",
    "false_positive_rates": "trustlab.fairness.metrics",
    "statistical_parity_difference": "trustlab.fairness.metrics",
    "disparate_impact": "trustlab.fairness.metrics",
    "equal_opportunity_difference": "trustlab.fairness.metrics",
    "average_odds_difference": "trustlab.fairness.metrics",
    "equalized_odds_difference": "trustlab.fairness.metrics",
    "calibration_by_group": "trustlab.fairness.metrics",
    "consistency": "trustlab.fairness.metrics",
    "consistency_terms": "trustlab.fairness.metrics",
    "resample_indices": "trustlab.fairness.metrics",
    "resample_blocks": "trustlab.fairness.metrics",
    "Estimate": "trustlab.fairness.table",
    "GroupRow": "trustlab.fairness.table",
    "PairRow": "trustlab.fairness.table",
    "FairnessResult": "trustlab.fairness.table",
    "fairness_table": "trustlab.fairness.table",
    "decisions": "trustlab.fairness.checks",
    "run_fairness": "trustlab.fairness.checks",
}

__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
