"""Benchmark scripts; run each from the repository root as ``python -m benchmarks.<name>``
(``make bench`` runs them all). Each prints ratios against a baseline measured in the same run.
"""
