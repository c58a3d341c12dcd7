"""Benchmarks of stacktune against plain baselines: `python -m benchmarks [--quick] [--only NAME] [--out DIR]`."""
