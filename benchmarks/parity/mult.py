"""Golden numbers of the original MulT (yaohungt/Multimodal-Transformer) for tests/parity/test_mult.py.

    python benchmarks/parity/mult.py --checkout /path/to/Multimodal-Transformer

Builds the original `MULTModel` (src/models.py, modules/*.py; imported unchanged) with a fixed seed at a
small size (nlevels 1, the memories keep their hard-coded 3 layers, d 30 as hard-coded; 4 samples of a few
time steps), casts it to float64 and runs three training steps of the original's `train()`: zero_grad,
forward, the criterion on the original's views (IEMOCAP: CrossEntropyLoss on `.view(-1, 2)`; MOSEI: L1Loss
on the score), backward, `clip_grad_norm_(model.parameters(), clip)`, Adam step. Dropout is 0 so both sides
are deterministic (fermix draws its dropout masks in another layout). Two cases: `iemocap_aligned` (equal
lengths, 8 outputs) and `mosei_unaligned` (three different lengths, so the future mask's offset
1 + |L_k − L_q| is exercised, one output, and a time step whose first feature is exactly 0, which the
original treats as padding when it adds positions).

The weights are not stored (the smallest original MulT still has ~0.5 M parameters): fermix's `MulT`
creates its tensors in the original's order, so `torch.manual_seed(SEED)` before either constructor gives
the same values; the golden file holds per-tensor checksums (sum, sum of squares, first and last value) of
the initial weights under fermix's names (fermix.methods.mult.convert), which the test checks first.

Recorded per case: the inputs and labels, the eval-mode outputs (logits, last_hs) of the initial model,
every step's loss, total gradient norm before clipping, per-group gradient norms (proj, crossmodal, memory,
head) and the per-tensor checksums of the parameters after the last step. `mosei_eval`: the original
`eval_mosei_senti` (src/eval_metrics.py) on 200 regression scores with exclude_zero False and True, the
numbers it prints. Also the parameter count of the original MULTModel with the IEMOCAP-aligned sizes
(300/74/35, nlevels 5, 8 outputs) — MulT's own (d 30, kernel 1) — for the record; CausalMER's variant
(d 40, kernels 3/5/3) is counted in causalmer.py.

One run-time patch (PATCHES): `SinusoidalPositionalEmbedding.forward` gets its input made contiguous first.
With current torch the original's `positions.view(-1)` fails on the non-contiguous slice the memory
transformers pass ("view size is not compatible"); CausalMER's copy of this code makes the same fix
(`.contiguous()` in TransformerEncoder.forward). Values are unchanged.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import importable, verify_checkout, write_golden

REPOSITORY = "yaohungt/Multimodal-Transformer"
COMMIT = "a670936824ee722c8494fd98d204977a1d663c7a"
FILES = {
    "src/models.py": "34411b4568f82dbee43125f864c98c0acb921913274467a2c4ff965a2b675fae",
    "modules/transformer.py": "e5cfc05d5fe8eed67d59a93296db9e179031cdda682bb0660c378a10e3ad61ca",
    "modules/multihead_attention.py": "17f6d199f49a772fa613849c2cd48319a8e0fd50514a8a7860952153594a6b53",
    "modules/position_embedding.py": "d59e0c826a02502e1233da138ed51c2610f585896335482956655d48946a1fed",
    "src/eval_metrics.py": "6a2e7b39b9ec22797af2e818ebcec5501ba6292eb7555493b7dd3c33b099bec9",
}
SEED = 1111  # the original's --seed default
STEPS = 3
LR = 1e-3  # the original's --lr default
CLIP = 0.8  # the original's --clip default
NUM_HEADS = 5  # the original's --num_heads default (d 30 / 5 heads)
NLEVELS = 1
CASES = {
    "iemocap_aligned": {"dims": (12, 6, 5), "lengths": (6, 6, 6), "out_dim": 8},
    "mosei_unaligned": {"dims": (12, 6, 5), "lengths": (5, 9, 7), "out_dim": 1},
}
IEMOCAP_FULL = {"dims": (300, 74, 35), "nlevels": 5, "num_heads": 10, "out_dim": 8}
GROUPS = ("proj", "crossmodal", "memory", "head")
PATCHES = [
    "modules.position_embedding.SinusoidalPositionalEmbedding.forward: input made contiguous first (current torch "
    "refuses the original's positions.view(-1) on a non-contiguous slice; CausalMER's copy makes the same fix)",
]


def patch_positions() -> None:
    from modules.position_embedding import SinusoidalPositionalEmbedding

    forward = SinusoidalPositionalEmbedding.forward

    def contiguous_forward(self: Any, input: torch.Tensor) -> torch.Tensor:
        return forward(self, input.contiguous())

    SinusoidalPositionalEmbedding.forward = contiguous_forward


def hyp(dims: tuple[int, int, int], out_dim: int, nlevels: int, num_heads: int, dropout: float = 0.0) -> Any:
    return SimpleNamespace(
        orig_d_l=dims[0], orig_d_a=dims[1], orig_d_v=dims[2], vonly=True, aonly=True, lonly=True,
        num_heads=num_heads, layers=nlevels, attn_dropout=dropout, attn_dropout_a=dropout, attn_dropout_v=dropout,
        relu_dropout=dropout, res_dropout=dropout, out_dropout=dropout, embed_dropout=dropout, attn_mask=True,
        output_dim=out_dim,
    )  # fmt: skip


def group_of(fermix_name: str) -> str:
    head = fermix_name.split(".")[0]
    return {"proj": "proj", "crossmodal": "crossmodal", "memory": "memory"}.get(head, "head")


def checksums(named: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """name -> float64 [sum, sum of squares, first value, last value]."""
    out = {}
    for name, t in named.items():
        flat = t.detach().double().reshape(-1)
        out[name] = torch.stack([flat.sum(), (flat * flat).sum(), flat[0], flat[-1]])
    return out


def inputs(case: dict[str, Any]) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(7)
    n = 4
    shapes = zip(("text", "audio", "vision"), case["lengths"], case["dims"], strict=True)
    x = {m: torch.randn(n, length, dim, generator=g, dtype=torch.float64) for m, length, dim in shapes}
    x["audio"][1, 2, 0] = 0.0  # the original reads a step whose first feature is 0 as padding (no position)
    if case["out_dim"] == 8:
        x["expr"] = torch.randint(0, 2, (n, 4), generator=g)
    else:
        x["score"] = torch.rand(n, generator=g, dtype=torch.float64) * 6 - 3
    return x


def run_case(models: Any, case: dict[str, Any]) -> dict[str, Any]:
    from fermix.methods.mult.convert import mult_key

    torch.manual_seed(SEED)
    model = models.MULTModel(hyp(case["dims"], case["out_dim"], NLEVELS, NUM_HEADS)).double()
    named = {mult_key(k): p for k, p in model.named_parameters()}
    x = inputs(case)
    out: dict[str, Any] = {f"input_{k}": v for k, v in x.items()}
    out["init_checksums_names"] = list(named)
    out["init_checksums"] = torch.stack(list(checksums(named).values()))
    model.eval()
    with torch.no_grad():
        logits, last_hs = model(x["text"], x["audio"], x["vision"])
    out["eval_logits"], out["eval_last_hs"] = logits, last_hs
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    iemocap = case["out_dim"] == 8
    criterion = torch.nn.CrossEntropyLoss() if iemocap else torch.nn.L1Loss()
    losses, total_norms, group_norms = [], [], []
    for _ in range(STEPS):
        model.zero_grad()
        preds, _ = model(x["text"], x["audio"], x["vision"])
        # IEMOCAP: the original's .view(-1, 2) pairs; MOSEI: batch_Y (N, 1, 1).squeeze(-1) against (N, 1) outputs.
        target = x["expr"].view(-1) if iemocap else x["score"].view(-1, 1)
        loss = criterion(preds.view(-1, 2) if iemocap else preds, target)
        loss.backward()
        norms = {g: 0.0 for g in GROUPS}
        for name, p in named.items():
            norms[group_of(name)] += float(p.grad.double().pow(2).sum())
        group_norms.append([norms[g] ** 0.5 for g in GROUPS])
        total_norms.append(float(torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)))
        optimizer.step()
        losses.append(loss.item())
    out["loss"] = torch.tensor(losses, dtype=torch.float64)
    out["grad_norm_total"] = torch.tensor(total_norms, dtype=torch.float64)
    out["grad_norm_groups"] = torch.tensor(group_norms, dtype=torch.float64)
    out["groups"] = list(GROUPS)
    out["final_checksums"] = torch.stack(list(checksums(named).values()))
    model.eval()
    with torch.no_grad():
        out["final_eval_logits"] = model(x["text"], x["audio"], x["vision"])[0]
    out["config"] = [f"{k}={v}" for k, v in case.items()]
    return out


def printed_numbers(fn: Any, *args: Any, **kwargs: Any) -> dict[str, float]:
    """Run an original eval function and read the numbers it prints ("name: value" lines)."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        fn(*args, **kwargs)
    out = {}
    for line in buffer.getvalue().splitlines():
        name, sep, value = line.rpartition(" ")
        if sep and name.strip():
            with contextlib.suppress(ValueError):  # a line that is not "name: number"
                out[name.strip().rstrip(":").strip()] = float(value)
    return out


def mosei_eval_case(eval_metrics: Any) -> dict[str, Any]:
    """The original's `eval_mosei_senti` on regression scores, with exclude_zero False and True (printed)."""
    g = torch.Generator().manual_seed(3)
    n = 200
    truths = torch.round(torch.rand(n, generator=g, dtype=torch.float64) * 6 - 3)  # many exact zeros
    truths[: n // 2] += torch.rand(n // 2, generator=g, dtype=torch.float64) * 0.8 - 0.4
    preds = torch.randn(n, generator=g, dtype=torch.float64) * 1.5 + 0.5  # biased: predicted ≠ true class counts
    out: dict[str, Any] = {"preds": preds, "truths": truths}
    for exclude in (False, True):
        numbers = printed_numbers(eval_metrics.eval_mosei_senti, preds, truths, exclude_zero=exclude)
        out[f"printed_names_exclude_zero_{exclude}"] = list(numbers)
        out[f"printed_exclude_zero_{exclude}"] = torch.tensor(list(numbers.values()), dtype=torch.float64)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--checkout", required=True, type=Path, help="a checkout of yaohungt/Multimodal-Transformer")
    args = parser.parse_args()
    checkout = verify_checkout(args.checkout, FILES, REPOSITORY, COMMIT)
    importable(checkout)
    import src.eval_metrics as eval_metrics
    import src.models as models  # the original's modules, unchanged

    patch_positions()

    cases = {name: run_case(models, case) for name, case in CASES.items()}
    cases["mosei_eval"] = mosei_eval_case(eval_metrics)
    full = models.MULTModel(hyp(IEMOCAP_FULL["dims"], IEMOCAP_FULL["out_dim"], IEMOCAP_FULL["nlevels"],
                                IEMOCAP_FULL["num_heads"]))  # fmt: skip
    cases["counts"] = {"mult_iemocap_aligned_params": sum(p.numel() for p in full.parameters())}
    write_golden(
        "mult",
        cases,
        {
            "repository": REPOSITORY,
            "commit": COMMIT,
            "script": "benchmarks/parity/mult.py",
            "command": "python benchmarks/parity/mult.py --checkout /path/to/Multimodal-Transformer",
            "patches": PATCHES,
            "seed": SEED,
            "steps": STEPS,
            "dtype": "float64",
        },
    )


if __name__ == "__main__":
    main()
