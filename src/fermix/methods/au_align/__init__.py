"""`au_align`: classifier attention guided by action-unit heatmaps (Belharbi et al., FG 2024).

A plain classifier (backbone, global average pooling, linear head). In training, the channel mean
of a chosen layer is pushed towards a soft map of the facial action units that go with the
sample's expression (drawn from its landmarks), with λ·(1 − cosine) added to cross-entropy.
Inference is the plain classifier; evaluation scores how well the attention and the CAMs match
the AU maps (ATT-COS, CAM-COS). Spec: shared/methods/au_align.md; doc: docs/methods/au_align.md.
"""

from fermix.methods.au_align.model import AUAlign, AUAlignConfig

__all__ = ["AUAlign", "AUAlignConfig"]
