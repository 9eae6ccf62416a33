"""Benchmarks of the conformance gate (not part of the shipped package)."""
