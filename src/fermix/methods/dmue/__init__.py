"""`dmue`: latent distribution mining and pairwise uncertainty estimation (She et al., CVPR 2021).

What it does, its options and every departure from the original: docs/methods/dmue.md.
"""

from fermix.methods.dmue.export import DMUETarget
from fermix.methods.dmue.model import DMUE, DMUEConfig

__all__ = ["DMUE", "DMUEConfig", "DMUETarget"]
