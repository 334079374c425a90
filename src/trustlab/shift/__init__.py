"""Distribution shift: a classifier on clean digits and on MNIST-C's 15 corruptions of them, with
accuracy intervals, error ratios, the mean corruption error against a baseline model, calibration
under shift, and whether the OOD alarm fires more often on corrupted inputs.

Names are re-exported lazily.
"""

from __future__ import annotations

from trustlab.core.lazy import lazy_exports

_EXPORTS = {
    "shift_audit": "trustlab.shift.evaluate",
    "check_shiftable": "trustlab.shift.evaluate",
    "calibrated_alarm": "trustlab.shift.evaluate",
    "expected_calibration_error": "trustlab.shift.evaluate",
    "ShiftResult": "trustlab.shift.results",
    "ShiftRow": "trustlab.shift.results",
    "run_shift": "trustlab.shift.checks",
    "upsample_digits": "trustlab.shift.domain",
    "domain_transfer": "trustlab.shift.domain",
    "TransferResult": "trustlab.shift.domain",
    "TransferRow": "trustlab.shift.domain",
}

__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
