"""`iern`: backdoor adjustment over a dataset-context confounder dictionary (Chen et al., ACM MM 2022).

See docs/methods/iern.md for the method, its options and every deviation from the original code.
"""

from fermix.methods.iern.model import IERN, IERNConfig

__all__ = ["IERN", "IERNConfig"]
