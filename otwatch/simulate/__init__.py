"""Synthetic plant traffic for the demo, tests and benchmarks (documentation-range addresses)."""
