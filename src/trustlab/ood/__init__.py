"""Reliability alarm: out-of-distribution detectors, conformal thresholds, a guarded classifier."""
