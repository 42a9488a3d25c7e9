"""Action-unit name lists: which AUs a dataset annotates, in index order (label order is data)."""

from __future__ import annotations

# The 16 AUs the synthetic generator animates (../shared/synthetic.md).
SYNTHETIC_AUS: tuple[str, ...] = (
    "AU1", "AU2", "AU4", "AU5", "AU6", "AU7", "AU9", "AU10",
    "AU12", "AU14", "AU15", "AU17", "AU20", "AU23", "AU25", "AU26",
)  # fmt: skip

# The 8 AUs of Aff-Wild2 / ABAW (multitask spec), in the annotation files' column order.
AFFWILD2_AUS: tuple[str, ...] = ("AU1", "AU2", "AU4", "AU6", "AU12", "AU15", "AU20", "AU25")
