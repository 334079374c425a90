"""Results, run directories and the HTML report."""

from trustlab.report.results import Result, result_kinds

__all__ = ["Result", "result_kinds"]
