"""Differential privacy primitives: thin, exact wrappers over OpenDP's samplers.

All noise is drawn by OpenDP; this package only chooses parameters, checks every measurement
against OpenDP's privacy map, and works on integers (the compiler quantizes sums onto an
integer grid), so no floating-point noise is ever sampled.
"""

from __future__ import annotations

from .accuracy import combined_half_width, combined_tail, coverage_probability, half_width
from .mechanisms import discrete_laplace, laplace_scale
from .quantile import noisy_quantile_index, quantile_rank_error, quantile_scale, quantile_scores
from .threshold import ThresholdResult, threshold_counts, threshold_parameters

__all__ = [
    "ThresholdResult",
    "combined_half_width",
    "combined_tail",
    "coverage_probability",
    "discrete_laplace",
    "half_width",
    "laplace_scale",
    "noisy_quantile_index",
    "quantile_rank_error",
    "quantile_scale",
    "quantile_scores",
    "threshold_counts",
    "threshold_parameters",
]
