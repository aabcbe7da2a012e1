"""The precision of every matrix product olfacto makes: float32 on every backend.

At the default precision XLA:GPU computes a float32 product in TF32 (10-bit mantissa) on NVIDIA GPUs
and XLA:TPU in bfloat16 passes. On an H200 that moved the chunked learning 3·10⁻⁴ of max |W| away from
the per-breath learning and every recorded measure by ~10⁻⁵ (docs/benchmarks.md §12). Every product
therefore asks for :data:`HIGHEST` per call — not through JAX's process-wide
``jax_default_matmul_precision``, so importing olfacto changes nothing — and ``tests/test_precision.py``
reads the precision of every product in the compiled programs.
"""

from __future__ import annotations

import jax

HIGHEST = jax.lax.Precision.HIGHEST
