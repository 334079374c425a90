"""Audits that chain the capabilities' checks on one model."""
