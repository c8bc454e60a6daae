"""Benchmarks of the pipeline beside naive baselines; run `python -m benchmarks --help`."""
