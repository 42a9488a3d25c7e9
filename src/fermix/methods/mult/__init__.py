"""`mult`: the Multimodal Transformer (MulT) alone, CausalMER's variant of it (docs/methods/causalmer.md).

The baseline of the causalmer comparison: the same backbone, trained with its task's criterion only.
"""

from fermix.methods.mult.model import MulTMethod, MulTMethodConfig

__all__ = ["MulTMethod", "MulTMethodConfig"]
