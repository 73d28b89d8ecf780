"""Benchmark-only: every Python process started with this folder on PYTHONPATH patches Labeler on import
(benchmarks/sleepy_labeler.py, hook)."""
import sleepy_labeler

sleepy_labeler.hook()
