"""Golden numbers of the original CausalMER (sejong-rcv/CausalMER) for tests/parity/test_causalmer.py.

    python benchmarks/parity/causalmer.py --checkout /path/to/CausalMER

CausalMER carries its own copy of MulT (src/models.py, modules/*.py), so only its checkout is needed.

What runs: the original `CAUSALMER` (src/causal_mer_model.py with its `MULTModel` and the ResNet-18
`AudioModel` / `VisionModel`, unchanged) built with a fixed seed under float64 default dtype at a small size
(nlevels 1 — the memories keep their hard-coded 3 layers —, d 40 as hard-coded, 4 samples of 8 steps), and
the original's own loss functions `calculate_loss` / `caculate_kl_loss`, taken out of `train_model` (where
they are closures) by rebuilding them from its code objects with the closure cells they expect
(hyp_params, criterion, caculate_kl_loss). The step loop is the original `train()`'s: zero_grad, forward,
the IEMOCAP `.view(-1, 2)` views (MOSEI-cls: `.view(-1)` labels), calculate_loss, backward,
`clip_grad_norm_(model.parameters(), 0.8)`, Adam over the original's seven groups (m, t, a, v, c_t, c_a,
c_v learning rates of main.sh). Three steps per case; dropout 0 on both sides (fermix draws its masks in
another layout), ResNet BatchNorm in training mode as in the original.

Cases: `iemocap_{sum,hm,mask,tanh}` (IEMOCAP kernels 3/5/3, 8 outputs, constant init 0.1 so the
constants are not 0) and `mosei_mask` (the 7-class MOSEI task, kernels 1/3/3, unequal lengths). Recorded:
the inputs and labels; per-tensor checksums of the initial weights under fermix's names (fermix's CausalMER
creates its tensors in the same order, so the same seed gives the same values; fermix.methods.mult.convert
maps the names); every forward quantity of the first step (TIE `logits_causal_mer`, `logits_te`,
`logits_m`, the branches, `z_te`, `z_nde_{t,a,v}`, `z_nde`); per step the four cross-entropies, α·L_cls,
β·L_kl and the total, the total gradient norm before clipping and per-group norms (mult, text, audio,
vision, constants); the constants' gradients; checksums of every parameter and buffer after the last step;
and the eval-mode TIE after it. `mosei_eval`: the original `eval_mosei_senti` (src/eval_metrics.py) on 200
7-class logits, the numbers it prints (Acc7, both Acc2 and F1 pairs). Also the parameter counts of the
original `MULTModel` with the IEMOCAP-aligned sizes (300/74/35, nlevels 5, 8 outputs) and of one ResNet-18 branch.

Run-time patches (PATCHES, also in meta.json):
- `transformers` is replaced by a stub module (src/model_t.py imports AlbertModel at import time), and
  `AlbertTextModel` by a small MLP text branch (flatten → Linear → ReLU → Linear: fermix's `text_branch=mlp`):
  ALBERT-base-v2 is 11.7 M parameters fetched from the hub; the causal part does not depend on which text
  encoder produces z_t.
- `AudioModel` / `VisionModel` are replaced by the same MLP in the `iemocap_{sum,hm,tanh}` cases only: the
  ResNet-18 branches run unpatched in `iemocap_mask` and `mosei_mask`; the fusions do not depend on the branch
  type, and three more ResNet pairs (22 M float64 parameters each) would make the test slow.
- `wandb` is replaced by a stub module (src/dataset.py, imported by src/train.py, imports it; unused here).
- `torch.Tensor.cuda` returns the tensor itself while the script runs (CAUSALMER.transform calls `.cuda()`
  on every counterfactual constant; this is a CPU run).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import types
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import importable, verify_checkout, write_golden

REPOSITORY = "sejong-rcv/CausalMER"
COMMIT = "5e63561dee2f749fbdd6e1b970b2c417db18cfe3"
FILES = {
    "src/causal_mer_model.py": "85cb0b09b1e027f0465252f5f42681b55114e3fb04f0801f1a72afe4ca9c2d2b",
    "src/models.py": "42346579c805ba379b1c69b7e697e8f35290af5ff7ef91cce1840401241bd727",
    "src/model_a.py": "f66a93f2611cbf7f376d1446dc599bf2d82a9c83dc6a8ba5d5e6081367a51520",
    "src/model_t.py": "2fd4c796ae6cb355828156ab4a4977d5bfd8ce0d1f7d3cb4979af9e271cde73e",
    "src/model_v.py": "9d1b419db6d48f908d98cda068e254b6b11f27e9be7790337ae38928989ba71b",
    "src/train.py": "38509c067ae26fb40f9d53c2d04f674e954c19b35776d56196434e3b4a3f744f",
    "src/utils.py": "cb9e1180c81a253145b0f4f838a274fccafa86a9ff6ac161dd05bd4d9d4bc707",
    "src/dataset.py": "6350a22273dc1af8e56bb71291bb2c2060334f12f739f394e125ec41682b8a7a",
    "src/eval_metrics.py": "2c2e4583b6c28125159b3ea6783dad88e7d9478665bed0cd435330b7db1cf3d4",
    "modules/transformer.py": "07fb9c92fc33279a8ee32733a3020cec75b9c42d33b8698e4f71ee909ff6e970",
    "modules/multihead_attention.py": "17f6d199f49a772fa613849c2cd48319a8e0fd50514a8a7860952153594a6b53",
    "modules/position_embedding.py": "d59e0c826a02502e1233da138ed51c2610f585896335482956655d48946a1fed",
}
SEED = 0  # main.sh's seed
STEPS = 3
CLIP = 0.8  # main.sh --clip
ALPHA, BETA = 0.1, 1.0  # main.sh --alpha / --beta (the argparse defaults)
LRS = {"mult": 2e-3, "text": 1e-6, "audio": 2e-3, "vision": 2e-3, "constants": 2e-3}  # main.sh
CONSTANT = 0.1  # main.sh uses 0.0; 0.1 keeps every constant-dependent term away from a symmetric point
HIDDEN = 16  # the MLP text branch
NLEVELS = 1
GROUPS = ("mult", "text", "audio", "vision", "constants")
ORIGINAL_BRANCHES: list[Any] = []  # the original AudioModel, VisionModel (ResNet-18)
NAMES: dict[str, dict[str, list[str]]] = {
    "resnet18": {},
    "mlp": {},
}  # fermix names of the checksum rows, the same in every case
CASES = {
    **{f"iemocap_{f}": {"dataset": "iemocap", "fusion": f, "dims": (12, 6, 5), "lengths": (8, 8, 8), "out_dim": 8,
                        "branches": "resnet18" if f == "mask" else "mlp"} for f in ("sum", "hm", "mask", "tanh")},
    "mosei_mask": {"dataset": "mosei_senti", "fusion": "mask", "dims": (12, 6, 5), "lengths": (6, 9, 7), "out_dim": 7,
                   "branches": "resnet18"},
}  # fmt: skip
PATCHES = [
    "sys.modules['transformers']: a stub (src/model_t.py imports AlbertModel at import time; not installed)",
    "causal_mer_model.AlbertTextModel: a small MLP text branch (flatten, Linear(L*D, 16), ReLU, Linear(16, out); "
    "fermix text_branch=mlp) instead of ALBERT-base-v2 fetched from the hub",
    "causal_mer_model.AudioModel / VisionModel: the same MLP in the iemocap_{sum,hm,tanh} cases only (the ResNet-18 "
    "branches run unpatched in iemocap_mask and mosei_mask; the fusions do not depend on the branch type, and "
    "three more ResNet pairs would make the test slow)",
    "sys.modules['wandb']: a stub (src/dataset.py, imported by src/train.py, imports it; unused)",
    "torch.Tensor.cuda returns the tensor itself (CAUSALMER.transform calls .cuda(); CPU run)",
]


class MLPBranch(nn.Module):
    """Stand-in branch with fermix's `mlp` layout (Flatten, Linear(L*D, 16), ReLU, then a Linear head)."""

    def __init__(self, length: int, dim: int, out_dim: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(length * dim, HIDDEN), nn.ReLU())
        self.head = nn.Linear(HIDDEN, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def mlp_model(modality: str) -> Any:
    """A constructor taking hyp_params, as AlbertTextModel / AudioModel / VisionModel do."""

    def build(hyp_params: Any) -> MLPBranch:
        length, dim = getattr(hyp_params, f"{modality}_len"), getattr(hyp_params, f"orig_d_{modality}")
        return MLPBranch(length, dim, hyp_params.output_dim)

    return build


def install_patches() -> None:
    stub = types.ModuleType("transformers")
    stub.AlbertModel = None  # never called: AlbertTextModel is replaced below
    sys.modules["transformers"] = stub
    sys.modules["wandb"] = types.ModuleType("wandb")
    torch.Tensor.cuda = lambda self, *args, **kwargs: self  # type: ignore[method-assign]


def hyp(case: dict[str, Any], nlevels: int = NLEVELS, dims: tuple[int, int, int] | None = None) -> Any:
    dims = dims or case["dims"]
    return SimpleNamespace(
        modality="tav", nde_t=1.0, nde_a=1.0, nde_v=1.0, fusion_mode=case["fusion"], output_dim=case["out_dim"],
        constant=CONSTANT, orig_d_l=dims[0], orig_d_a=dims[1], orig_d_v=dims[2], l_len=case["lengths"][0],
        a_len=case["lengths"][1], v_len=case["lengths"][2],
        vonly=True, aonly=True, lonly=True, num_heads=10, layers=nlevels, attn_dropout=0.0, attn_dropout_a=0.0,
        attn_dropout_v=0.0, relu_dropout=0.0, res_dropout=0.0, out_dropout=0.0, embed_dropout=0.0, attn_mask=True,
        dataset=case["dataset"], alpha=ALPHA, beta=BETA, mosei_task="cls",
    )  # fmt: skip


def original_losses(train_module: Any, hyp_params: Any, criterion: nn.Module) -> Any:
    """`calculate_loss` of the original's train_model, rebuilt from its code object with its closure cells."""
    consts = {c.co_name: c for c in train_module.train_model.__code__.co_consts if isinstance(c, types.CodeType)}
    kl_code, loss_code = consts["caculate_kl_loss"], consts["calculate_loss"]
    kl_fn = types.FunctionType(kl_code, train_module.__dict__, "caculate_kl_loss")
    cells = {"hyp_params": hyp_params, "criterion": criterion, "caculate_kl_loss": kl_fn}
    closure = tuple(types.CellType(cells[name]) for name in loss_code.co_freevars)
    return types.FunctionType(loss_code, train_module.__dict__, "calculate_loss", None, closure)


def group_of(fermix_name: str) -> str:
    head = fermix_name.split(".")
    if head[0] == "branches":
        return head[1]
    return "mult" if head[0] == "mult" else "constants"


def checksums(named: dict[str, torch.Tensor], ends: bool = True) -> torch.Tensor:
    """One row per tensor: [sum, sum of squares] and, with `ends`, its first and last value."""
    rows = []
    for t in named.values():
        flat = t.detach().double().reshape(-1)
        row = [flat.sum(), (flat * flat).sum()] + ([flat[0], flat[-1]] if ends else [])
        rows.append(torch.stack(row))
    return torch.stack(rows)


def inputs(case: dict[str, Any]) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(11)
    n = 4
    shapes = zip(("text", "audio", "vision"), case["lengths"], case["dims"], strict=True)
    x = {m: torch.randn(n, length, dim, generator=g, dtype=torch.float64) for m, length, dim in shapes}
    if case["out_dim"] == 8:
        x["expr"] = torch.randint(0, 2, (n, 4), generator=g)
    else:
        x["expr"] = torch.randint(0, 7, (n,), generator=g)
    return x


def run_case(cm: Any, train_module: Any, case: dict[str, Any]) -> dict[str, Any]:
    from fermix.methods.mult.convert import causalmer_key

    hyp_params = hyp(case)
    cm.AudioModel, cm.VisionModel = (
        ORIGINAL_BRANCHES if case["branches"] == "resnet18" else (mlp_model("a"), mlp_model("v"))
    )
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        torch.manual_seed(SEED)
        model = cm.CAUSALMER(hyp_params)
    finally:
        torch.set_default_dtype(previous)
    named = {causalmer_key(k): p for k, p in model.named_parameters()}
    state = {causalmer_key(k): v for k, v in model.state_dict().items() if causalmer_key(k) is not None}
    x = inputs(case)
    out: dict[str, Any] = {f"input_{k}": v for k, v in x.items()}
    out["init_checksums"] = checksums(named)
    group_params = {
        "mult": model.tav_branch.parameters(), "text": model.t_branch.parameters(),
        "audio": model.a_branch.parameters(), "vision": model.v_branch.parameters(),
    }  # fmt: skip
    optimizer = torch.optim.Adam(
        [{"params": p, "lr": LRS[g]} for g, p in group_params.items()]
        + [{"params": c, "lr": LRS["constants"]} for c in (model.constant_t, model.constant_a, model.constant_v)],
        lr=1e-3,
    )
    criterion = nn.CrossEntropyLoss()
    calculate_loss = original_losses(train_module, hyp_params, criterion)
    iemocap = case["dataset"] == "iemocap"
    rows: dict[str, list] = {k: [] for k in ("ce_te", "ce_t", "ce_a", "ce_v", "cls", "kl", "total")}
    total_norms, group_norms, constant_grads = [], [], []
    model.train()
    for step in range(STEPS):
        model.zero_grad()
        preds = model(x["text"], x["audio"], x["vision"])
        if step == 0:
            for k in ("logits_causal_mer", "logits_te", "logits_m", "logits_t", "logits_a", "logits_v",
                      "z_te", "z_nde", "z_nde_t", "z_nde_a", "z_nde_v", "mult_last_hs"):  # fmt: skip
                out[f"step0_{k}"] = preds[k].detach().clone()
        eval_attr = x["expr"]
        if iemocap:
            for k in ("logits_te", "logits_t", "logits_a", "logits_v"):
                preds[k] = preds[k].view(-1, 2)
        eval_attr = eval_attr.view(-1)
        loss = calculate_loss(preds, eval_attr)
        with torch.no_grad():
            ces = [criterion(preds[k], eval_attr) for k in ("logits_te", "logits_t", "logits_a", "logits_v")]
        for name, value in zip(("ce_te", "ce_t", "ce_a", "ce_v"), ces, strict=True):
            rows[name].append(float(value))
        rows["cls"].append(ALPHA * float(sum(ces)))
        rows["total"].append(loss.item())
        rows["kl"].append(loss.item() - ALPHA * float(sum(ces)))
        loss.backward()
        norms = dict.fromkeys(GROUPS, 0.0)
        for name, p in named.items():
            if p.grad is not None:
                norms[group_of(name)] += float(p.grad.pow(2).sum())
        group_norms.append([norms[g] ** 0.5 for g in GROUPS])
        constant_grads.append([float(c.grad) for c in (model.constant_t, model.constant_a, model.constant_v)])
        total_norms.append(float(torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)))
        optimizer.step()
    for k, v in rows.items():
        out[f"loss_{k}"] = torch.tensor(v, dtype=torch.float64)
    out["grad_norm_total"] = torch.tensor(total_norms, dtype=torch.float64)
    out["grad_norm_groups"] = torch.tensor(group_norms, dtype=torch.float64)
    out["groups"] = list(GROUPS)
    out["constant_grads"] = torch.tensor(constant_grads, dtype=torch.float64)
    out["final_checksums"] = checksums(
        {k: v for k, v in model.state_dict().items() if causalmer_key(k) is not None}, ends=False
    )
    # One architecture per branch type: the names are stored once per type, in `counts`.
    NAMES[case["branches"]].update(param_names=list(named), state_names=list(state))
    model.eval()
    with torch.no_grad():
        final = model(x["text"], x["audio"], x["vision"])
    out["final_eval_tie"] = final["logits_causal_mer"]
    out["final_eval_te"] = final["logits_te"]
    out["config"] = [f"{k}={v}" for k, v in case.items()]
    return out


def printed_numbers(fn: Any, *args: Any) -> dict[str, float]:
    """Run an original eval function and read the numbers it prints ("name: value" lines)."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        fn(*args)
    out = {}
    for line in buffer.getvalue().splitlines():
        name, sep, value = line.rpartition(" ")
        if sep and name.strip():
            with contextlib.suppress(ValueError):  # a line that is not "name: number"
                out[name.strip().rstrip(":").strip()] = float(value)
    return out


def mosei_eval_case(eval_metrics: Any) -> dict[str, Any]:
    """The original's `eval_mosei_senti` on 7-class logits: Acc7 and both Acc2 / F1 pairs (printed)."""
    g = torch.Generator().manual_seed(3)
    n = 200
    truths = torch.round(torch.rand(n, generator=g, dtype=torch.float64) * 6 - 3)  # many exact zeros
    truths[: n // 2] += torch.rand(n // 2, generator=g, dtype=torch.float64) * 0.8 - 0.4
    logits = torch.randn(n, 7, generator=g, dtype=torch.float64)
    logits[::5, 3] += 5.0  # a neutral prediction every fifth sample (where the Acc2 definitions differ)
    numbers = printed_numbers(eval_metrics.eval_mosei_senti, logits, truths)
    return {"logits": logits, "truths": truths, "printed_names": list(numbers),
            "printed": torch.tensor(list(numbers.values()), dtype=torch.float64)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--checkout", required=True, type=Path, help="a checkout of sejong-rcv/CausalMER")
    args = parser.parse_args()
    checkout = verify_checkout(args.checkout, FILES, REPOSITORY, COMMIT)
    importable(checkout)
    install_patches()
    import src.causal_mer_model as cm
    import src.eval_metrics as eval_metrics
    import src.train as train_module

    cm.AlbertTextModel = mlp_model("l")
    ORIGINAL_BRANCHES[:] = [cm.AudioModel, cm.VisionModel]
    cases = {name: run_case(cm, train_module, case) for name, case in CASES.items()}
    cases["mosei_eval"] = mosei_eval_case(eval_metrics)
    full = hyp({"fusion": "mask", "out_dim": 8, "lengths": (20, 20, 20), "dataset": "iemocap"}, 5, (300, 74, 35))
    torch.manual_seed(SEED)
    cases["counts"] = {
        "mult_iemocap_aligned_params": sum(p.numel() for p in cm.MULTModel(full).parameters()),
        "resnet_branch_params": sum(p.numel() for p in ORIGINAL_BRANCHES[0](full).parameters()),
        **{f"{kind}_{key}": names for kind, values in NAMES.items() for key, names in values.items()},
    }
    write_golden(
        "causalmer",
        cases,
        {
            "repository": REPOSITORY,
            "commit": COMMIT,
            "script": "benchmarks/parity/causalmer.py",
            "command": "python benchmarks/parity/causalmer.py --checkout /path/to/CausalMER",
            "patches": PATCHES,
            "seed": SEED,
            "steps": STEPS,
            "dtype": "float64",
        },
    )


if __name__ == "__main__":
    main()
