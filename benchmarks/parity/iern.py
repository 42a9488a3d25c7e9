"""IERN parity: the original's own training step (donydchen/causal_emotion) on fixed inputs, in float64.

    python benchmarks/parity/iern.py --checkout /path/to/causal_emotion

Imports `models.iern_model` and `models.networks` from the checkout, builds `IERNModel` (ResNet-50
backbone, random init, as the original hard-codes it) with a fixed seed at a tiny size (64 px
images, so the projected map is S = 2; C = 8 channels; batch 4), runs STEPS calls of its own
`optimize_parameters` in float64 on fixed seeded inputs, then its `forward_Test` in eval mode.
Writes tests/golden/iern/: the inputs (a pool of uint8 images and per-step indices and labels),
the initial weights of every network but the backbone (original key layout, float64), per-tensor
checksums of the initial backbone (the test regenerates it from the seed with torchvision and
checks it against them; 24 M parameters do not fit in a golden file), every loss term per step,
per-group gradient norms per optimizer step, and after steps 4 and 12 (SNAPSHOTS) per-tensor
checksums of every network and the eval logits. No extra pip package is needed. The default test
(tests/parity/test_iern.py) replays 4 steps, the slow one all 12.

Run-time patches (nothing in the checkout is edited; also listed in meta.json):
1. `networks.define_iern` is called by `IERNModel.__init__` with the literal sizes 512 and 7;
   a wrapper replaces them with C and S (tiny size).
2. `networks.CenterLoss` is built with the literal 512 * 7 * 7; a wrapper replaces it with C * S * S.
3. `IERNModel.forward_Cls` first recomputes `emo_feat = netEmoGen(base_feat)`: the original reuses
   the e of `forward_Feat` after `optimizer_Feat` changed g_e in place, which PyTorch >= 1.5
   refuses ("modified by an inplace operation"). This is fermix's `recompute_emotion: true`
   (docs/methods/iern.md, deviation 1), so both sides compute the same step.
CPU needs no patch (`gpu_ids=[]` is the original's own CPU setting); float64 is the default dtype
(`torch.set_default_dtype`), set before the networks are built.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import importable, verify_checkout, write_golden

REPOSITORY = "donydchen/causal_emotion"
COMMIT = "8663158079c1fbd77d95f438364f8929fa241dcd"
EXPECTED = {  # sha256 of every original file imported, at COMMIT
    "models/__init__.py": "d68fc90a5c2aa3ed3bb1833f35d112a47c5afcdb63ca97259c51e5d5629b0684",
    "models/base_model.py": "91b5a8404783527b847088ffe7bb44b27d78bf8b930edd5df023d731acc55375",
    "models/iern_model.py": "4bd8b659cece5a4b03ea0f7cba131d23abef1a4648d15342bc57377f7d90b061",
    "models/networks.py": "1b210c3aef68cf32af37c2c23d1684385639cd64011f213a17d1827acec245a3",
    "models/warmup_scheduler.py": "f834bfacca7c2bfadf42678d8fda5c71b774254d285a3507c9b04f59c6793f4f",
}

SEED = 0  # torch.manual_seed right before IERNModel(opt): the backbone is the first thing it draws
DATA_SEED = 1
IMAGE, CHANNELS, EMOTIONS, STRATA = 64, 8, 6, 3
BATCH, STEPS, POOL = 4, 12, 6
SNAPSHOTS = (4, 12)  # weights and eval logits after these steps (the default test runs 4, the slow one 12)
LAMBDA = 5e-4
# Two of the original's own options differ from their defaults, so that the tiny model tests something:
# n_dis_blk 2 (3 would halve C = 8 down to one channel) and init_gain 0.5 (at 0.02 the discriminators'
# logits are ~1e-6, so their losses are log K and log E to every printed digit).
DIS_BLOCKS, INIT_GAIN = 2, 0.5
NETS = ("Base", "EmoGen", "ConGen", "Recons", "EmoDis", "ConDis", "Cnfnd", "Cls")
GROUPS = {  # the original's param groups per optimizer (the fermix test names them the same way)
    "dis": ("emo_dis", "con_dis"),
    "feat": ("emo_gen", "con_gen", "centers", "fuser"),
    "cls": ("backbone", "emo_gen", "fuser", "classifier"),
}
PATCHES = [
    "networks.define_iern: IERNModel passes the literal feat_nc=512, feat_size=7; replaced by C=8, S=2 (tiny size)",
    "networks.CenterLoss: IERNModel passes the literal feat_dim=512*7*7; replaced by C*S*S (tiny size)",
    "IERNModel.forward_Cls: recompute emo_feat = netEmoGen(base_feat) first; the original reuses the e of "
    "forward_Feat after optimizer_Feat changed g_e in place, which PyTorch >= 1.5 refuses (fermix's "
    "recompute_emotion, docs/methods/iern.md deviation 1)",
]


def images_to_input(pool: torch.Tensor) -> torch.Tensor:
    """uint8 N×3×H×W -> the [-1, 1] float64 input of the original's Normalize(0.5, 0.5)."""
    return (pool.to(torch.float64) / 255.0 - 0.5) / 0.5


def checksums(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Per tensor: sum, sum of squares and a position-weighted sum (catches permutations), in float64."""
    out = {}
    for key, value in tensors.items():
        v = value.detach().to(torch.float64).flatten()
        w = torch.linspace(-1.0, 1.0, v.numel(), dtype=torch.float64) if v.numel() > 1 else torch.ones(1)
        out[key] = torch.stack([v.sum(), v.pow(2).sum(), (v * w).sum()])
    return out


def make_data() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(DATA_SEED)
    pool = torch.randint(0, 256, (POOL, 3, IMAGE, IMAGE), generator=g, dtype=torch.uint8)
    index = torch.stack([torch.randperm(POOL, generator=g)[:BATCH] for _ in range(STEPS)])
    expr = torch.randint(0, EMOTIONS, (STEPS, BATCH), generator=g)
    domain = torch.randint(0, STRATA, (STEPS, BATCH), generator=g)
    return {"pool": pool, "index": index, "expr": expr, "domain": domain}


def options() -> SimpleNamespace:
    """The option fields IERNModel and BaseModel read: argparse defaults but CPU, no pretraining and the above."""
    return SimpleNamespace(
        isTrain=True, gpu_ids=[], checkpoints_dir="unused", preprocess="common",
        emo_num=EMOTIONS, cnfnd_num=STRATA, n_gen_blk=2, n_recons_blk=3, n_dis_blk=DIS_BLOCKS,
        backbone_archi="resnet50", no_backbone_pretrained=True, init_type="normal", init_gain=INIT_GAIN,
        lr=2e-4, base_lr=1e-4, beta1=0.5, lambda_cnfnd=LAMBDA,
    )  # fmt: skip


def patch(networks: Any, iern_model: Any, spatial: int) -> None:
    define = networks.define_iern
    center = networks.CenterLoss

    def define_iern(n_emo, n_cnfnd, feat_nc, feat_size, *args, **kwargs):
        assert (feat_nc, feat_size) == (512, 7), (feat_nc, feat_size)
        return define(n_emo, n_cnfnd, CHANNELS, spatial, *args, **kwargs)

    def center_loss(num_classes, feat_dim):
        assert feat_dim == 512 * 7 * 7, feat_dim
        networks.CenterLoss = center  # its __init__ calls super(CenterLoss, self): the class must be in place
        try:
            return center(num_classes, CHANNELS * spatial * spatial)
        finally:
            networks.CenterLoss = center_loss

    networks.define_iern = define_iern
    networks.CenterLoss = center_loss
    forward_cls = iern_model.IERNModel.forward_Cls

    def forward_Cls(self):
        self.emo_feat = self.netEmoGen(self.base_feat)
        return forward_cls(self)

    iern_model.IERNModel.forward_Cls = forward_Cls


def grad_norms(optimizer: torch.optim.Optimizer, names: tuple[str, ...]) -> dict[str, float]:
    out = {}
    for name, group in zip(names, optimizer.param_groups, strict=True):
        grads = [p.grad.detach().flatten() for p in group["params"] if p.grad is not None]
        out[name] = float(torch.cat(grads).norm()) if grads else 0.0
    return out


def snapshot(model: Any, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Checksums of every network's state (and the centers), then the eval logits of `forward_Test`."""
    state = {f"{name}/{k}": v for name in NETS for k, v in getattr(model, "net" + name).state_dict().items()}
    state["centers"] = model.criterionCenter.centers
    sums = checksums(state)  # one N×3 tensor and its row names: a file entry per tensor would triple the size
    model.eval()
    with torch.no_grad():
        model.set_input({"img": x, "emo": torch.zeros(len(x)), "cnfnd": torch.zeros(len(x)), "img_path": []})
        model.forward_Test()  # no side effect on training: the next forward_Feat overwrites what it sets
    model.train()
    return {
        "checksum/names": list(sums),
        "checksum/values": torch.stack(list(sums.values())),
        "eval/pred_emo": model.pred_emo.detach().clone(),
        "eval/pred_emo_all": model.pred_emo_all.detach().clone(),
    }


def run(checkout: Path) -> dict[str, Any]:
    importable(checkout)
    from models import iern_model, networks

    torch.set_default_dtype(torch.float64)
    spatial = IMAGE // 32  # ResNet-50's stride
    patch(networks, iern_model, spatial)
    torch.manual_seed(SEED)
    model = iern_model.IERNModel(options())
    init = {name: {k: v.clone() for k, v in getattr(model, "net" + name).state_dict().items()} for name in NETS}
    centers0 = model.criterionCenter.centers.detach().clone()

    norms: dict[str, list[float]] = {}
    for opt, key in zip(model.optimizers, GROUPS, strict=True):

        def hook(o: torch.optim.Optimizer, _args: Any, _kwargs: Any, key: str = key) -> None:
            for name, value in grad_norms(o, GROUPS[key]).items():
                norms.setdefault(f"{key}/{name}", []).append(value)

        opt.register_step_pre_hook(hook)  # records, changes nothing

    data = make_data()
    x_all = images_to_input(data["pool"])
    losses: dict[str, list[float]] = {n: [] for n in model.loss_names}
    snapshots = {}
    model.train()
    for step in range(1, STEPS + 1):
        idx = data["index"][step - 1]
        batch = {"img": x_all[idx], "emo": data["expr"][step - 1], "cnfnd": data["domain"][step - 1], "img_path": []}
        model.set_input(batch)
        model.optimize_parameters()
        for name, value in model.get_current_losses().items():
            losses[name].append(value)
        if step in SNAPSHOTS:
            snapshots[step] = snapshot(model, x_all)

    case: dict[str, Any] = {
        "seed": SEED, "image_size": IMAGE, "channels": CHANNELS, "spatial": spatial, "steps": STEPS,
        "snapshots": list(SNAPSHOTS), "lambda_cnfnd": LAMBDA, "emotions": EMOTIONS, "strata": STRATA,
        "dis_blocks": DIS_BLOCKS, "init_gain": INIT_GAIN, "gen_blocks": 2, "recons_blocks": 3, "batch": BATCH,
        **{f"data/{k}": v for k, v in data.items()},
        "init/centers": centers0,
        **{f"loss/{k}": torch.tensor(v) for k, v in losses.items()},
        **{f"grad_norm/{k}": torch.tensor(v) for k, v in norms.items()},
    }  # fmt: skip
    for name in NETS[1:]:
        for k, v in init[name].items():
            case[f"init/{name}/{k}"] = v
    sums = checksums(init["Base"])
    case["init_checksum/Base/names"] = list(sums)
    case["init_checksum/Base/values"] = torch.stack(list(sums.values()))
    for step, snap in snapshots.items():
        for k, v in snap.items():
            case[f"after_{step}/{k}"] = v
    return case


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkout", type=Path, required=True, help="a checkout of donydchen/causal_emotion")
    args = parser.parse_args()
    checkout = verify_checkout(args.checkout, EXPECTED, REPOSITORY, COMMIT)
    torch.set_num_threads(1)
    case = run(checkout)
    meta = {
        "repository": REPOSITORY,
        "commit": COMMIT,
        "script": "benchmarks/parity/iern.py",
        "command": "python benchmarks/parity/iern.py --checkout /path/to/causal_emotion",
        "patches": PATCHES,
        "sizes": {"image": IMAGE, "channels": CHANNELS, "batch": BATCH, "steps": STEPS, "pool": POOL},
        "options": {"n_dis_blk": DIS_BLOCKS, "init_gain": INIT_GAIN, "lambda_cnfnd": LAMBDA, "dtype": "float64"},
    }
    write_golden("iern", {"train_steps": case}, meta)


if __name__ == "__main__":
    main()
