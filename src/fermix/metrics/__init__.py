"""Split-level evaluation metrics (accumulated over the whole split, DDP-safe)."""

from fermix.metrics.expression import ExpressionMetrics, scalar_metrics

__all__ = ["ExpressionMetrics", "scalar_metrics"]
from fermix.metrics.abaw import (
    AUMetrics,
    VAMetrics,
    au_scores,
    au_scores_from_counts,
    average_thresholds,
    ccc,
    expr_scores,
    expr_scores_from_confusion,
    search_thresholds,
    selection_score,
    va_scores,
)

__all__ += [
    "AUMetrics",
    "VAMetrics",
    "au_scores",
    "au_scores_from_counts",
    "average_thresholds",
    "ccc",
    "expr_scores",
    "expr_scores_from_confusion",
    "search_thresholds",
    "selection_score",
    "va_scores",
]
