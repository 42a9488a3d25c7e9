"""Golden numbers of DMUE's original training step (JDAI-CV/FaceX-Zoo, addition_module/DMUE).

    python benchmarks/parity/dmue.py --checkout PATH

PATH is a FaceX-Zoo checkout (git work tree or `git archive` export) at the commit below, or its
`addition_module/DMUE` folder. No extra package is needed (the original's `datasets` package, which
needs lmdb, is replaced by a stub: the step never reads data through it).

What runs: the original's own `train.train_one_epoch` (Adam over its two parameter groups `base`
and `classifiers`, ramps, soft labels, the four losses, backward, step) on the original's
multi-branch ResNet-18 (`models.make_model`, stem without ReLU, 2×2 max-pool), in float64, CPU,
3 classes at 32×32 px, for two epochs of two steps (epoch 3: ramp-up 0.29; epoch 7: ramp-down 0.98),
each on a fixed subset of 9 seeded images, dropout seeded before every step. Then the original's
evaluation forward (`model(img, label, 'normal')` in eval mode) on all 9 images.

Initial weights: every tensor of the original's state dict is overwritten from one seeded
generator, tensor by tensor in state-dict order (`seeded_state` below; the test regenerates them
the same way and maps them with fermix's convert.dmue_to_method), so no weights are stored.

Written to tests/golden/dmue/: `train.pt` (inputs, per-step loss terms, ramps, learning rates,
per-group gradient norms, uncertainty scores, per-tensor sum/norm of the initial and final state
and norm of each tensor's change, evaluation logits) and meta.json.

Run-time patches (also in meta.json "patches"):
1. `torch.nn.Module.cuda` returns the module unchanged and `torch.Tensor.cuda` returns a floating
   tensor in float64, any other tensor unchanged (CPU run; the original hard-codes .cuda() in
   train.py, models/make_model.py and losses/softLoss.py, and its float32 soft-label rows must
   enter the float64 soft-label matrix, which index_put refuses across dtypes).
2. `config` is a stand-in module: the original config.py parses a label file at import; the
   stand-in has config.py's values (w 0.5, T 1.2, gamma 1000, ramp_a 6, the lr1/lr2 tables,
   bnneck, GAP, resnet18, last_stride 2, sp_confidence) except num_classes = 3.
3. `datasets` is a stand-in module (its make_dataloader needs lmdb; train_one_epoch takes a loader).
4. torch's default dtype is float64 (the original builds its one-hot matrix with torch.zeros);
   the original still rounds the soft labels to float32 (`torch.zeros(...).float()` in
   train.py), which the tolerances absorb.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import types
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import importable, verify_checkout, write_golden

REPOSITORY = "JDAI-CV/FaceX-Zoo"
COMMIT = "16b793a7564a4b9308cf94e62bdb2ffacb3a725a"
SUBDIR = "addition_module/DMUE"
FILES = {  # sha256 at COMMIT of every original file imported (paths inside addition_module/DMUE)
    "train.py": "88d426ff9a767830e37f44f89a5b1c6c378598dba47c7ecf28f81ba7f399fcd7",
    "losses/__init__.py": "c50cb54ab1fc3218641a8db2b80f4b8a4079718fda64fe2d9c1bf8bd0afa0c7b",
    "losses/softLoss.py": "4f9fb0606beac2145ed19388e81b9c43b7b133d45226bdd99f452ef5ca53690b",
    "losses/SP_KD_Loss.py": "4bbca98bb5bab21b2835052ecbbff12cd80cd4c18f6a5e2fd570bae9bf0ec792",
    "models/__init__.py": "91c82e2d51403461120d050334ef8d34dd27b00ebca149e79b0e3982cb17b42b",
    "models/make_model.py": "ed8b8da4c68bd51dcc46853f892187b7196db95c7501c51f6a9cc4440460501d",
    "models/resnet_multibranch.py": "2d75b8a0aaab85600752a2ae90860d05fd45510552dfdb0932bb322fdc93bcb3",
    "models/resnet_ibn_multibranch.py": "8a3f8bfb8b25d0277214ac0fcebed9c14c93c5bc05babe6ec8876b7ac4e73735",
    "models/make_target_model.py": "242f535fe24095974095027535eda7f72756369f9d834efb464254f42b930665",
    "models/resnet.py": "d94c1d62e4a59002dcb689b1d175fbe957f0d9f5b6b6e117e9b68650acd51bc3",
    "models/resnet_ibn_a.py": "61893cec0fa0e17c99705094ac0a537304c2aa598e93e6b71309e7e19639dc5e",
    "utils/__init__.py": "ed741998ac5ed35f86a454766b16160820fcbe695bd8469b3bed35555251dcf4",
    "utils/easylog.py": "7ca5f928710d5a1624459f59d4597562cf1bd0509435d57f797cedef9080eb6d",
    "utils/ramp.py": "4a5d1af3ebf1504937726670b8e417ec4b05f94cd7bd157b53601454030800d4",
}

NUM_CLASSES = 3
IMAGE_SIZE = 32
SEED = 20210401
STEPS = [  # (epoch, indices into the 9 images): every class at least twice (the original's batch rule)
    (3, [0, 1, 2, 3, 4, 5, 6, 7, 8]),
    (3, [8, 6, 4, 2, 0, 1, 3, 5]),
    (7, [0, 3, 1, 4, 2, 5]),
    (7, [5, 3, 1, 0, 2, 4, 6, 7, 8]),
]
DROPOUT_SEED = 77  # torch.manual_seed(DROPOUT_SEED + step) right before each step


def seeded_state(specs: list[tuple[str, list[int]]], seed: int) -> dict[str, torch.Tensor]:
    """Deterministic float64 weights for a list of (key, shape), drawn in list order.

    Conv: Kaiming-normal (fan-in); linear: N(0, 1/fan_in); 1-element weight (PReLU): 0.25 + 0.1·N;
    other 1-d weights (BN): 1 + 0.1·N; biases: 0.1·N; running_mean 0.1·N, running_var 1 + 0.1·|N|,
    num_batches_tracked 0. tests/parity/test_dmue.py has the same function (checked by checksums)."""
    g = torch.Generator().manual_seed(seed)
    out: dict[str, torch.Tensor] = {}
    for key, shape in specs:
        if key.endswith("num_batches_tracked"):
            out[key] = torch.zeros(shape, dtype=torch.long)
            continue
        n = torch.randn(shape, generator=g, dtype=torch.float64)
        if key.endswith("running_mean"):
            out[key] = 0.1 * n
        elif key.endswith("running_var"):
            out[key] = 1 + 0.1 * n.abs()
        elif len(shape) == 4:
            out[key] = n * math.sqrt(2.0 / (shape[1] * shape[2] * shape[3]))
        elif len(shape) == 2:
            out[key] = n / math.sqrt(shape[1])
        elif key.endswith("bias"):
            out[key] = 0.1 * n
        elif math.prod(shape) == 1:
            out[key] = 0.25 + 0.1 * n
        else:
            out[key] = 1 + 0.1 * n
    return out


def _to_default_dtype(self: torch.Tensor, *args, **kwargs) -> torch.Tensor:
    """Stand-in for Tensor.cuda on CPU: floating tensors in the default dtype (float64), others as they are."""
    return self.to(torch.get_default_dtype()) if self.is_floating_point() else self


def _patch_environment(workdir: Path) -> None:
    torch.set_default_dtype(torch.float64)
    torch.Tensor.cuda = _to_default_dtype  # type: ignore[method-assign]
    nn.Module.cuda = lambda self, *a, **k: self  # type: ignore[method-assign]

    class Cfg:  # config.py's values, 3 classes
        num_classes = NUM_CLASSES
        num_branches = NUM_CLASSES + 1
        w, T, gamma, ramp_a = 0.5, 1.2, 1000, 6
        lr1 = ((6, 0.0001), (12, 0.00005), (20, 0.00001), (22, 0.00001), (25, 0.00005), (60, 0.00001))
        lr2 = ((4, 0.001), (8, 0.0005), (14, 0.0001), (22, 0.00001), (25, 0.00005), (60, 0.00001))
        bnneck, use_dropout, BiasInCls = True, True, False
        train_mode, second_order_statics = "sp_confidence", "mean"
        backbone, last_stride, frozen_stages, pooling_method = "resnet18", 2, -1, "GAP"
        weight_decay = 1e-4
        ckpt_root_dir, output_dir = str(workdir), "dmue_parity"
        pretrained = ""

        def get_lr(self, epoch: int) -> tuple[float, float]:
            lr1 = next(v for until, v in self.lr1 if epoch < until)
            lr2 = next(v for until, v in self.lr2 if epoch < until)
            return lr1, lr2

    config = types.ModuleType("config")
    config.config = Cfg()
    sys.modules["config"] = config
    datasets = types.ModuleType("datasets")
    datasets.make_dataloader = lambda cfg: (_ for _ in ()).throw(RuntimeError("stub"))
    sys.modules["datasets"] = datasets


class Recorder:
    """Wraps a criterion of the original and keeps every value it returns."""

    def __init__(self, fn) -> None:
        self.fn, self.values = fn, []

    def __call__(self, *args, **kwargs):
        value = self.fn(*args, **kwargs)
        self.values.append(float(value.detach()))
        return value


def checksums(state: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-tensor sum and L2 norm (float64), in state-dict order."""
    sums = torch.stack([v.double().sum() for v in state.values()])
    norms = torch.stack([v.double().norm() for v in state.values()])
    return sums, norms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkout", required=True, type=Path, help="FaceX-Zoo root or its addition_module/DMUE")
    args = parser.parse_args()
    root = Path(args.checkout).expanduser().resolve()
    dmue = root / SUBDIR if (root / SUBDIR).is_dir() else root
    dmue = verify_checkout(dmue, FILES, REPOSITORY, COMMIT)
    workdir = Path(tempfile.mkdtemp(prefix="dmue_parity_"))
    _patch_environment(workdir)
    importable(dmue)
    # The original's modules, from the checkout (train.py is its training script).
    import train as original
    from losses import SoftLoss, SP_KD_Loss

    from models import make_model

    cfg = sys.modules["config"].config
    model = make_model(cfg)
    specs = [(k, list(v.shape)) for k, v in model.state_dict().items()]
    init = seeded_state(specs, SEED)
    model.load_state_dict(init)
    init = {k: v.clone() for k, v in model.state_dict().items()}

    g = torch.Generator().manual_seed(SEED + 1)
    images = torch.randn(9, 3, IMAGE_SIZE, IMAGE_SIZE, generator=g, dtype=torch.float32)  # stored in float32
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2])

    optimizer = torch.optim.Adam(
        [
            {"params": model.base.parameters(), "lr": cfg.get_lr(0)[0]},
            {"params": model.classifiers.parameters(), "lr": cfg.get_lr(0)[1]},
        ],
        weight_decay=cfg.weight_decay,
    )  # as train.py's train() builds it (not importable without its data)
    ce, soft, sp = Recorder(nn.CrossEntropyLoss()), Recorder(SoftLoss()), Recorder(SP_KD_Loss())
    grad_norms: list[list[float]] = []
    lrs: list[list[float]] = []
    real_step = optimizer.step

    def step_and_record(*a, **k):
        grad_norms.append(
            [
                float(torch.stack([p.grad.norm() for p in group["params"] if p.grad is not None]).norm())
                for group in optimizer.param_groups
            ]
        )
        lrs.append([group["lr"] for group in optimizer.param_groups])
        return real_step(*a, **k)

    optimizer.step = step_and_record
    scores: list[torch.Tensor] = []
    hook = model.register_forward_hook(lambda _m, _i, out: scores.append(out[6].detach().flatten().clone()))

    step = 0
    for epoch in sorted({e for e, _ in STEPS}):
        batches = [(images[idx].double(), labels[idx]) for e, idx in STEPS if e == epoch]
        seeds = [DROPOUT_SEED + step + i for i in range(len(batches))]
        step += len(batches)
        original.train_one_epoch(_SeededList(batches, seeds), None, model, [ce, soft, sp], optimizer, epoch, cfg)

    hook.remove()
    model.eval()
    with torch.no_grad():
        eval_logits = model(images.double(), labels, "normal")[0]

    n = len(STEPS)
    aux = torch.tensor(ce.values, dtype=torch.float64).view(n, NUM_CLASSES + 1)
    final = model.state_dict()
    init_sum, init_norm = checksums(init)
    final_sum, final_norm = checksums(final)
    delta_norm = torch.stack([(final[k].double() - init[k].double()).norm() for k in final])
    epochs = [e for e, _ in STEPS]
    payload = {
        "images": images,
        "labels": labels,
        "step_epochs": epochs,
        "step_indices": [idx for _, idx in STEPS],
        "dropout_seed": DROPOUT_SEED,
        "init_seed": SEED,
        "keys": list(final),
        "shapes": [list(v.shape) for v in final.values()],
        "ce": aux[:, -1].clone(),
        "aux": aux[:, :-1].sum(1) / NUM_CLASSES,
        "soft": torch.tensor(soft.values, dtype=torch.float64),
        "sp": torch.tensor(sp.values, dtype=torch.float64),
        "ramp_up": torch.tensor([original.ramp_up(e, cfg.ramp_a) for e in epochs], dtype=torch.float64),
        "ramp_down": torch.tensor([original.ramp_down(e, cfg.ramp_a) for e in epochs], dtype=torch.float64),
        "lr": torch.tensor(lrs, dtype=torch.float64),
        "grad_norm": torch.tensor(grad_norms, dtype=torch.float64),  # (step, group: base, classifiers)
        "score": torch.cat(scores),
        "score_sizes": [len(idx) for _, idx in STEPS],
        "init_sum": init_sum,
        "init_norm": init_norm,
        "final_sum": final_sum,
        "final_norm": final_norm,
        "delta_norm": delta_norm,
        "eval_logits": eval_logits.detach().clone(),
    }
    meta = {
        "repository": REPOSITORY,
        "commit": COMMIT,
        "script": "benchmarks/parity/dmue.py",
        "command": "python benchmarks/parity/dmue.py --checkout /path/to/FaceX-Zoo",
        "files_sha256": {f"{SUBDIR}/{k}": v for k, v in FILES.items()},
        "setup": f"resnet18 (multi-branch, {NUM_CLASSES} classes), {IMAGE_SIZE} px, float64, CPU, "
        f"{n} steps (epochs {epochs}), batch sizes {[len(i) for _, i in STEPS]}",
        "patches": [
            "torch.nn.Module.cuda returns the module; torch.Tensor.cuda returns floating tensors in float64, "
            "others unchanged (CPU run; the float32 soft-label rows of train.py enter a float64 matrix)",
            "config is a stand-in module with config.py's values and num_classes=3 (config.py reads a label file)",
            "datasets is a stand-in module (its make_dataloader needs lmdb; the step does not use it)",
            "torch default dtype float64 (the original's soft labels still pass through float32)",
        ],
    }
    write_golden("dmue", {"train": payload}, meta)


class _SeededList(list):
    """A list of batches that seeds torch's global RNG right before handing out each batch, so the
    dropout masks of step s come from torch.manual_seed(DROPOUT_SEED + s) (train_one_epoch needs len())."""

    def __init__(self, batches: list, seeds: list[int]) -> None:
        super().__init__(batches)
        self.seeds = seeds

    def __iter__(self):
        for seed, batch in zip(self.seeds, list.__iter__(self), strict=True):
            torch.manual_seed(seed)
            yield batch


if __name__ == "__main__":
    main()
