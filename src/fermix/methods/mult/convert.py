"""Parameter names of the original MulT / CausalMER modules → fermix's, so their state dicts load here.

The original `MULTModel` (yaohungt/Multimodal-Transformer and CausalMER's copy of it) names its parts
`proj_l`, `trans_l_with_a`, `trans_l_mem`, ...; fermix's `MulT` keeps the same layer names inside the
encoders and groups the streams by modality (`proj.text`, `crossmodal.text_with_audio`, `memory.text`).
CausalMER's `CAUSALMER` adds `tav_branch.` (the MulT), the branches and the three constants. Only the
names change: every tensor keeps its shape and values. Buffers the original keeps and fermix does not
(`version`, `embed_positions._float_tensor`) are dropped. Used by the parity tests (tests/parity/).
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor

_LETTER = {"l": "text", "a": "audio", "v": "vision"}
_DROPPED = ("version", "embed_positions._float_tensor")


def mult_key(name: str) -> str | None:
    """fermix `MulT` name of one original `MULTModel` entry; None for the buffers fermix does not keep."""
    if name.endswith(_DROPPED):
        return None
    head, _, rest = name.partition(".")
    if head in ("proj_l", "proj_a", "proj_v"):
        return f"proj.{_LETTER[head[-1]]}.{rest}"
    if head.startswith("trans_") and head.endswith("_mem"):
        return f"memory.{_LETTER[head[len('trans_')]]}.{rest}"
    if head.startswith("trans_") and "_with_" in head:
        target, source = head[len("trans_") :].split("_with_")
        return f"crossmodal.{_LETTER[target]}_with_{_LETTER[source]}.{rest}"
    if head in ("proj1", "proj2", "out_layer"):
        return name
    raise KeyError(f"not a MULTModel entry: {name}")


def causalmer_key(name: str) -> str | None:
    """fermix `CausalMER` name of one original `CAUSALMER` entry (None: a buffer fermix does not keep).

    The ResNet branches (`a_branch.a_branch.*`, `v_branch.v_branch.*`) map onto `branches.{audio,vision}.net.*`,
    the ALBERT text branch (`t_branch.*`) onto `branches.text.*`."""
    head, _, rest = name.partition(".")
    if head == "tav_branch":
        key = mult_key(rest)
        return None if key is None else f"mult.{key}"
    if head in ("constant_t", "constant_a", "constant_v"):
        return f"constants.{head}"
    if head in ("a_branch", "v_branch"):
        modality = _LETTER[head[0]]
        if rest.startswith(f"{head}."):  # the ResNet-18 inside AudioModel / VisionModel
            return f"branches.{modality}.net.{rest.removeprefix(f'{head}.')}"
        return f"branches.{modality}.{rest}"  # a branch already laid out as fermix's (e.g. the parity MLPs)
    if head == "t_branch":
        return f"branches.text.{rest}"
    raise KeyError(f"not a CAUSALMER entry: {name}")


def convert_state_dict(state: Mapping[str, Tensor], causalmer: bool = False) -> dict[str, Tensor]:
    """An original state dict with fermix's names (MulT alone, or with `causalmer=True` a whole CAUSALMER)."""
    rename = causalmer_key if causalmer else mult_key
    out = {}
    for name, value in state.items():
        key = rename(name)
        if key is not None:
            out[key] = value
    return out
