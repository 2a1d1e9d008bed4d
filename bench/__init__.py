"""Benchmarks; each script rewrites its section of BENCHMARKS.md."""
