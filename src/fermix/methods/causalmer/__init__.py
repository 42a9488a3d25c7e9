"""`causalmer`: counterfactual removal of single-modality direct effects around a MulT backbone
(Kim, Hong, Choi, Applied Sciences 2024). docs/methods/causalmer.md; spec ../shared/methods/causalmer.md.
"""

from fermix.methods.causalmer.model import CausalMER, CausalMERConfig

__all__ = ["CausalMER", "CausalMERConfig"]
