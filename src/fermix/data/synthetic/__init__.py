"""The procedural face benchmark (../shared/synthetic.md): faces from the iBUG-68 landmark
scheme, deformed by action units, rendered with OpenCV, with known confounders and labels."""

from fermix.data.synthetic.config import SyntheticConfig
from fermix.data.synthetic.dataset import SyntheticDataset

__all__ = ["SyntheticConfig", "SyntheticDataset"]
