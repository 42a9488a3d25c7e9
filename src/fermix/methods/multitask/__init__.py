"""`multitask`: AU, expression and valence/arousal from incomplete labels, teacher → students (Deng et al., FG 2020).

What it does, its options and every departure from the original: docs/methods/multitask.md.
"""

from fermix.methods.multitask.model import Multitask, MultitaskConfig, MultitaskNet

__all__ = ["Multitask", "MultitaskConfig", "MultitaskNet"]
