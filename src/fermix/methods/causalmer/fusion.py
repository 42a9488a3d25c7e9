"""Fusion F(z_m, z_t, z_a, z_v) and the counterfactual quantities of CausalMER (spec §1.3, §1.4).

A branch that is "not treated" is replaced by a learned scalar constant c (`c · ones`), z_m included.
Write Y(k; c) for F with only branch k factual and the rest set to c. Then

    Z_all = F(z_m, z_t, z_a, z_v)            (TE's factual term, trained with cross-entropy: logits_te)
    Z_k   = F(c_k … z_k … c_k)  for k ∈ {t, a, v}
    Z_0   = F(c, c, c, c)      with c = c_t + c_a + c_v (the original's reference constant)
    TIE   = Z_all − Z_T − Z_A − Z_V + 2·Z_0 = TE − NDE_T − NDE_A − NDE_V   (the prediction)

with TE = Z_all − Z_0 and NDE_k = Z_k − Z_0. The prediction uses **detached constants** and live logits;
the loss terms te / nde_k use **detached logits** and live constants, so the KL trains only the constants.
"""

from __future__ import annotations

import torch
from torch import Tensor

from fermix.errors import FermixError

FUSIONS = ("sum", "hm", "mask", "tanh")
EPS = 1e-12


def check_fusion(mode: str) -> str:
    if mode == "lm":
        raise FermixError(
            "fusion=lm is not implemented by CausalMER (its code stops in a debugger); use sum, hm, mask or tanh"
        )
    if mode not in FUSIONS:
        raise FermixError(f"fusion must be one of {', '.join(FUSIONS)}, not `{mode}`")
    return mode


def fuse(mode: str, z_m: Tensor, z_t: Tensor, z_a: Tensor, z_v: Tensor) -> Tensor:
    """Elementwise over the logits: sum = log σ(Σz) (CF-VQA SUM); hm = log P − log1p P with P = Π σ(z)
    (CF-VQA harmonic); mask = z_m · σ(z_t + z_a + z_v) (RUBi-style, the released config); tanh = z_m + Σ tanh(z_k)."""
    if mode == "sum":
        return torch.log(torch.sigmoid(z_m + z_t + z_a + z_v) + EPS)
    if mode == "hm":
        p = torch.sigmoid(z_m) * torch.sigmoid(z_t) * torch.sigmoid(z_a) * torch.sigmoid(z_v)
        return torch.log(p + EPS) - torch.log1p(p)
    if mode == "mask":
        return z_m * torch.sigmoid(z_t + z_a + z_v)
    if mode == "tanh":
        return z_m + torch.tanh(z_t) + torch.tanh(z_a) + torch.tanh(z_v)
    raise FermixError(f"fusion must be one of {', '.join(FUSIONS)}, not `{mode}`")


def _at_least_32(x: Tensor) -> Tensor:
    """fp16 / bf16 logits (AMP) are lifted to float32, where log(σ + 1e-12) does not underflow; float64 stays."""
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def _fill(like: Tensor, constant: Tensor) -> Tensor:
    return torch.ones_like(like) * constant


def _single(mode: str, z: dict[str, Tensor], factual: str, constant: Tensor) -> Tensor:
    """F with only branch `factual` kept (or none, factual='') and every other input set to `constant`."""
    return fuse(mode, *(z[k] if k == factual else _fill(z[k], constant) for k in ("m", "t", "a", "v")))


def counterfactual_outputs(
    mode: str, z_m: Tensor, z_t: Tensor, z_a: Tensor, z_v: Tensor,
    c_t: Tensor, c_a: Tensor, c_v: Tensor, c_ref: Tensor,
) -> dict[str, Tensor]:  # fmt: skip
    """The prediction (`logits_tie`, `logits_te` = Z_all) and the loss quantities (`z_te`, `z_nde_{t,a,v}`,
    `z_nde`) with the original's detach pattern. Computed in float32 at least (AMP-safe log / sigmoid; a float64
    model stays float64)."""
    live = {"m": _at_least_32(z_m), "t": _at_least_32(z_t), "a": _at_least_32(z_a), "v": _at_least_32(z_v)}
    constants = {"t": c_t, "a": c_a, "v": c_v}
    z_all = fuse(mode, *live.values())
    z_k = [_single(mode, live, k, c.detach()) for k, c in constants.items()]
    tie = z_all - z_k[0] - z_k[1] - z_k[2] + 2 * _single(mode, live, "", c_ref.detach())
    frozen = {k: v.detach() for k, v in live.items()}
    base = _single(mode, frozen, "", c_ref)
    out = {"logits_tie": tie, "logits_te": z_all, "z_te": fuse(mode, *frozen.values()) - base}
    for k, c in constants.items():
        out[f"z_nde_{k}"] = _single(mode, frozen, k, c) - base
    out["z_nde"] = out["z_nde_t"] + out["z_nde_a"] + out["z_nde_v"]
    return out
