"""Benchmarks: ``python -m bench.<name> [--quick]``; results and commands in BENCHMARKS.md.

Benchmarks are not tests: they print measured ratios and never assert timings. The smoke test
``tests/bench/test_bench_smoke.py`` checks only their correctness parts.
"""
