"""fermix: facial-expression and emotion recognition methods as plugins of one framework."""

__version__ = "0.1.0"
