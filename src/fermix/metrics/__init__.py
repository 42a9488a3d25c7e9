"""Split-level evaluation metrics (accumulated over the whole split, DDP-safe)."""

from fermix.metrics.expression import ExpressionMetrics, scalar_metrics

__all__ = ["ExpressionMetrics", "scalar_metrics"]
