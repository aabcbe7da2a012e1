"""Benchmarks and profiling beside the package (run by ``olfacto bench`` from a source tree)."""
