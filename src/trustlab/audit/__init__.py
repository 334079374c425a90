"""The audit: every applicable check on one model, judged in a trust scorecard (see ``plan``)."""

from trustlab.core.lazy import lazy_exports

_EXPORTS = {
    "prepare": "trustlab.audit.runner",
    "run_audit": "trustlab.audit.runner",
    "AuditOutcome": "trustlab.audit.runner",
    "PROFILES": "trustlab.audit.plan",
    "Scorecard": "trustlab.audit.scorecard",
    "load_policy": "trustlab.audit.scorecard",
    "junit_xml": "trustlab.audit.scorecard",
    "run_demo": "trustlab.audit.demo",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
