"""`erm`: empirical risk minimisation — backbone, global average pooling, linear head, cross-entropy.

The plain classifier every method in fermix is compared against (same backbone, same budget).
"""

from fermix.methods.erm.model import ERM, ERMConfig

__all__ = ["ERM", "ERMConfig"]
