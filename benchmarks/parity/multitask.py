"""Golden numbers of the multitask original (wtomin/Multitask-Emotion-Recognition-with-Incomplete-Labels).

    python benchmarks/parity/multitask.py --checkout /path/to/Multitask-Emotion-Recognition-with-Incomplete-Labels

Runs the original's own functions from the checkout (`Multitask-CNN/utils/model_utils.py`, the
`ResNet50` training model of `Multitask-CNN/models/resnet50.py`, the CNN-RNN's `GRU_Head` /
`Seq_Model`) on fixed seeded inputs and writes only numbers to tests/golden/multitask/:

- `va_bins`: the VA cross-entropy target bins of `Custom_CrossEntropyLoss` (float32 labels, every
  bin edge included) and the read-out of `ResNet50._format_estimates`.
- `losses`: every task loss and distillation loss of `AU_Losses` / `EXPR_Losses` / `VA_Losses`
  (BCE, CE, CE over bins + 1 − CCC, BCE against σ(teacher), KL at T = 1.5), float64.
- `steps`: `ResNet50.optimize_parameters` (teacher, 2 steps) then `optimize_parameters_kd`
  (student, 2 steps) in float64 on a `Model` whose backbone is a small substitute trunk (fermix's
  `small_cnn`, width 2, 8 px; the FER+ ResNet-50 is too big for a golden file and its weights are not
  public): initial weights, every loss term per step, per-group gradient norms, parameters after.
- `rnn`: the CNN-RNN `Seq_Model` (the trained teacher of `steps` frozen + `GRU_Head`s) forward on a (B, T)
  window batch in train mode.
- `metrics`: `AU_metric`, `EXPR_metric`, `VA_metric` and the checkpoint-selection sum of `train.py`.
- `augment`: the training transform of the backbone (`augment_transforms`, the one v drawn when the
  model is built) on a seeded 112 px image, for the seeds in the payload.

Needs, besides fermix's venv: `six` (imported by model_utils), scikit-learn and matplotlib (already there).

Run-time patches (nothing in the checkout is edited; all listed in meta.json "patches"):
1. CPU only: `torch.Tensor.cuda` and `nn.Module.cuda` return their object unchanged, and
   `torch.cuda.FloatTensor` / `torch.cuda.LongTensor` build CPU tensors (the original hard-codes CUDA).
2. `models/resnet50.py` is read as text and `async=True` replaced by `non_blocking=True` before it is
   executed (a SyntaxError since Python 3.7); `from .models import ...` is resolved to the checkout's
   `models/models.py`. Nothing else in it changes.
3. `PATH` (hard-coded /media/Samsung paths) is imported as is; no dataset or model file is read.
4. `ResNet50.__init__` is bypassed (it loads the FER+ ResNet-50 from disk): the object is built with
   `__new__` and given the attributes `__init__` would set (`_opt`, `resnet50`, `lambdas_per_task`,
   `_optimizer_F` as in `_init_train_vars`, `_input_image` / `_label`, `_init_losses()`), with the
   small trunk as `BackBone` stand-in.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import random
import sys
import types
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO_ROOT, importable, verify_checkout, write_golden

REPOSITORY = "wtomin/Multitask-Emotion-Recognition-with-Incomplete-Labels"
COMMIT = "b8089ee916c0d679c33522d009915745b28c7ef1"
FILES = {
    "Multitask-CNN/utils/model_utils.py": "2b2a4f0861de21f383923ac9431a875daae8c603cbecc597d71618173b6f0c40",
    "Multitask-CNN/utils/data_utils.py": "a8c4a79c176e17aedcebad3b0422213a5195b6077e1afb3a0eb3995cc22ad9ad",
    "Multitask-CNN/PATH/__init__.py": "3c59978eee8ba9bc20c116ff3d8659aaf75ec9bbdc32d50bb9bdd8fbf6969fbc",
    "Multitask-CNN/models/resnet50.py": "10ad3caa7c0229c3e4fbc4dd569102bf7d0a2cab108a01249465f8c6816e7c5a",
    "Multitask-CNN/models/models.py": "98d82712f7afb6ef4414ea68ca9d9e497ac6046f81c89a1661ca185a97ae59db",
    "Multitask-CNN-RNN/utils/model_utils.py": "4b7757018a34edc8a14332e1a995286c5e66619a9c5fd3c3bec79d5474f55a39",
}
PATCHES = [
    "CPU only: torch.Tensor.cuda and nn.Module.cuda return their object; torch.cuda.FloatTensor / LongTensor "
    "build CPU tensors (the original hard-codes CUDA)",
    "Multitask-CNN/models/resnet50.py is executed from its text with `async=True` replaced by `non_blocking=True` "
    "(a SyntaxError since Python 3.7); nothing else changes",
    "ResNet50.__init__ is bypassed (it loads the FER+ ResNet-50 from disk): the object gets the attributes __init__ "
    "sets (_opt, resnet50 = Model(small trunk, Heads), lambdas_per_task, Adam as _init_train_vars, _init_losses())",
    "the backbone is a substitute trunk: fermix small_cnn (width 2) + AdaptiveAvgPool2d(1), 8 px inputs, float64",
]
TASKS = ["EXPR", "AU", "VA"]  # the original's head order
FERMIX = {"EXPR": "expr", "AU": "au", "VA": "va"}
SIZES = {"EXPR": 7, "AU": 8, "VA": 40}
WIDTH = 2  # small_cnn width: a 16-channel feature
IMAGE = 8  # px: small_cnn's four stride-2 stages end at 1×1
FERPLUS_META = {"mean": [131.0912, 103.8827, 91.4953], "std": [1, 1, 1], "imageSize": [224, 224, 3]}


# --- the original, loaded -------------------------------------------------------------------------------
def _cpu_only() -> None:
    torch.Tensor.cuda = lambda self, *a, **k: self  # type: ignore[method-assign]
    nn.Module.cuda = lambda self, *a, **k: self  # type: ignore[method-assign]

    def factory(dtype: torch.dtype):
        def make(*args):
            if len(args) == 1 and not isinstance(args[0], int):
                return torch.as_tensor(np.asarray(args[0]), dtype=dtype)
            return torch.zeros(*args, dtype=dtype)

        return make

    torch.cuda.FloatTensor = factory(torch.float32)  # type: ignore[attr-defined]
    torch.cuda.LongTensor = factory(torch.long)  # type: ignore[attr-defined]


def _load(checkout: Path) -> types.SimpleNamespace:
    _cpu_only()
    cnn = checkout / "Multitask-CNN"
    importable(checkout, "Multitask-CNN")
    import utils.model_utils as mu

    models_pkg = types.ModuleType("models")
    models_pkg.__path__ = [str(cnn / "models")]
    sys.modules["models"] = models_pkg
    spec = importlib.util.spec_from_file_location("models.models", cnn / "models" / "models.py")
    base = importlib.util.module_from_spec(spec)
    sys.modules["models.models"] = base
    spec.loader.exec_module(base)
    source = (cnn / "models" / "resnet50.py").read_text().replace("async=True", "non_blocking=True")
    r50 = types.ModuleType("models.resnet50")
    r50.__file__ = str(cnn / "models" / "resnet50.py")
    r50.__package__ = "models"
    sys.modules["models.resnet50"] = r50
    exec(compile(source, r50.__file__, "exec"), r50.__dict__)
    spec = importlib.util.spec_from_file_location(
        "rnn_model_utils", checkout / "Multitask-CNN-RNN" / "utils" / "model_utils.py"
    )
    rnn = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(rnn)
    return types.SimpleNamespace(mu=mu, ResNet50=r50.ResNet50, rnn=rnn)


def _opt(batch_size: int) -> types.SimpleNamespace:
    """The original's train options (options/*.py defaults of the paper run) that the code paths read."""
    return types.SimpleNamespace(
        tasks=list(TASKS), AU_label_size=8, EXPR_label_size=7, VA_label_size=2, digitize_num=20,
        AU_criterion="BCE", EXPR_criterion="CE", VA_criterion="CCC_CE", lambda_AU=8.0, lambda_EXPR=1.0,
        lambda_V=1.0, lambda_A=1.0, lambda_ccc=1.0, lambda_teacher=0.4, temperature=1.5, batch_size=batch_size,
        hidden_size=16, optimizer="Adam", lr_F=1e-4, F_adam_b1=0.5, F_adam_b2=0.999, lr_policy="step",
        lr_decay_epochs=3, gpu_ids=[], is_train=True, checkpoints_dir="/nonexistent", name="parity",
    )  # fmt: skip


def _trunk(width: int) -> nn.Module:
    from fermix.models.backbones import build_backbone

    return nn.Sequential(build_backbone({"name": "small_cnn", "width": width}), nn.AdaptiveAvgPool2d(1))


def _training_model(orig: types.SimpleNamespace, opt: types.SimpleNamespace, width: int, seed: int):
    """A `ResNet50` training object (patch 4) around Model(trunk, Heads) in float64."""
    torch.manual_seed(seed)
    trunk = _trunk(width)
    heads = nn.ModuleList([orig.mu.Head(8 * width, opt.hidden_size, SIZES[t]) for t in TASKS])
    m = orig.ResNet50.__new__(orig.ResNet50)
    m._opt, m._name, m._gpu_ids, m._is_train = opt, "ResNet50", [], True
    m._Tensor = torch.Tensor
    m._output_size_per_task = dict(SIZES)
    m.lambdas_per_task = {"AU": opt.lambda_AU, "EXPR": opt.lambda_EXPR, "VA": [opt.lambda_V, opt.lambda_A]}
    m.resnet50 = orig.mu.Model(trunk, heads, opt.tasks).double()
    m._init_train_vars()
    m._input_image, m._label = {}, {}
    m._init_losses()
    m.set_train()
    return m


# --- inputs ---------------------------------------------------------------------------------------------
def _labels(task: str, n: int, g: torch.Generator) -> torch.Tensor:
    if task == "EXPR":
        return torch.randint(0, 7, (n,), generator=g)
    if task == "AU":
        return torch.randint(0, 2, (n, 8), generator=g).double()
    # float32 values (the original's label tensor is a FloatTensor), some on bin edges
    va = (torch.rand(n, 2, generator=g) * 2 - 1).float()
    va[0] = torch.tensor([0.7, -0.3])
    return va.double()


def _step_batch(n: int, size: int, seed: int) -> dict[str, dict[str, torch.Tensor]]:
    """Images are float32 values held in float64 (stored as float32 in the golden file: half the size)."""
    g = torch.Generator().manual_seed(seed)
    return {t: {"image": torch.randn(n, 3, size, size, generator=g).double(),
                "label": _labels(t, n, g)} for t in TASKS}  # fmt: skip


def _state(model: nn.Module, prefix: str) -> dict:
    """A state dict as its float keys and one flat float64 vector (one record instead of ~100 small ones)."""
    items = [(k, v) for k, v in model.state_dict().items() if v.is_floating_point()]
    return {
        f"{prefix}keys": [k for k, _ in items],
        f"{prefix}flat": torch.cat([v.detach().reshape(-1).double() for _, v in items]),
    }


def _checksums(model: nn.Module, prefix: str) -> dict:
    """Per-tensor (sum, L2 norm) of a state dict's float tensors: exact enough to pin parameters after training."""
    items = [(k, v.detach().double()) for k, v in model.state_dict().items() if v.is_floating_point()]
    return {
        f"{prefix}keys": [k for k, _ in items],
        f"{prefix}sums": torch.stack([torch.stack([v.sum(), v.norm()]) for _, v in items]),
    }


def _grad_norms(model: nn.Module) -> dict[str, float]:
    groups: dict[str, float] = {}
    for name, p in model.named_parameters():
        if p.grad is None:
            continue
        group = "backbone" if name.startswith("backbone.") else f"head_{TASKS[int(name.split('.')[1])]}"
        groups[group] = groups.get(group, 0.0) + float(p.grad.pow(2).sum())
    return {k: v**0.5 for k, v in groups.items()}


# --- cases ----------------------------------------------------------------------------------------------
def case_va_bins(orig: types.SimpleNamespace) -> dict:
    edges32 = torch.from_numpy(np.linspace(-1, 1, 21).astype(np.float32))
    g = torch.Generator().manual_seed(1)
    tenths = torch.round(torch.rand(60, generator=g) * 20 - 10) / 10  # annotations on the 0.1 grid
    labels = torch.cat([edges32, torch.rand(200, generator=g) * 2 - 1, tenths]).float()
    captured: list[torch.Tensor] = []
    make_long = torch.cuda.LongTensor

    def capture(arg):
        out = make_long(arg)
        captured.append(out.clone())
        return out

    torch.cuda.LongTensor = capture
    ce = orig.mu.Custom_CrossEntropyLoss(20)
    logits = torch.zeros(len(labels), 20)
    ce(logits, labels)
    torch.cuda.LongTensor = make_long
    g = torch.Generator().manual_seed(2)
    va_logits = torch.randn(32, 40, generator=g) * 3
    fake = types.SimpleNamespace(_opt=types.SimpleNamespace(digitize_num=20))
    decoded = orig.ResNet50._format_estimates(fake, {"VA": va_logits})["VA"]
    return {"labels": labels, "bins": captured[0], "va_logits": va_logits, "decoded": torch.from_numpy(decoded)}


def case_losses(orig: types.SimpleNamespace) -> dict:
    opt = _opt(12)
    g = torch.Generator().manual_seed(3)
    out = {}
    n = 12
    for t in TASKS:
        out[f"student_{t}"] = torch.randn(n, SIZES[t], generator=g, dtype=torch.float64) * 2
        out[f"teacher_{t}"] = torch.randn(n, SIZES[t], generator=g, dtype=torch.float64) * 2
        out[f"label_{t}"] = _labels(t, n, g)
    crit = {"AU": orig.mu.AU_Losses(opt), "EXPR": orig.mu.EXPR_Losses(opt), "VA": orig.mu.VA_Losses(opt)}
    for t in TASKS:
        s, te, y = out[f"student_{t}"], out[f"teacher_{t}"], out[f"label_{t}"]
        task = crit[t].get_task_loss()(s, y)
        kd = crit[t].get_distillation_loss()(s, te)
        if t == "VA":
            out["gt_V"], out["gt_A"] = task[0].detach(), task[1].detach()
            out["kd_V"], out["kd_A"] = kd[0].detach(), kd[1].detach()
            ccc = orig.mu.CCCLoss(20)
            out["ccc_loss_V"] = ccc(s[:, :20], y[:, :1]).detach()
            out["ccc_loss_A"] = ccc(s[:, 20:], y[:, 1:]).detach()
        else:
            out[f"gt_{t}"], out[f"kd_{t}"] = task.detach(), kd.detach()
    return out


def _train(orig, opt, model, steps, seed0, teacher=None) -> dict:
    out = {}
    for step in range(steps):
        batch = _step_batch(opt.batch_size, IMAGE, seed0 + step)
        for t in TASKS:
            out[f"step{step}_image_{t}"] = batch[t]["image"].float()
            out[f"step{step}_label_{t}"] = batch[t]["label"]
            model._input_image[t] = batch[t]["image"]
            model._label[t] = batch[t]["label"]
        if teacher is None:
            model.optimize_parameters()
        else:
            model.optimize_parameters_kd(teacher)
        for k, v in model.loss_dict.items():
            out[f"step{step}_{k}"] = float(v)
        for k, v in _grad_norms(model.resnet50).items():
            out[f"step{step}_gradnorm_{k}"] = v
    return out


def case_steps(orig: types.SimpleNamespace) -> tuple[dict, object]:
    opt = _opt(4)
    width = WIDTH
    teacher = _training_model(orig, opt, width, seed=10)
    out = {"width": width, "hidden": opt.hidden_size, "batch_size": opt.batch_size}
    out.update(_state(teacher.resnet50, "teacher_init."))
    out.update({f"teacher_{k}": v for k, v in _train(orig, opt, teacher, 2, 100).items()})
    out.update(_checksums(teacher.resnet50, "teacher_final."))
    # train.py: the teacher is deep-copied and set to eval; a student is a freshly built model
    frozen = copy.deepcopy(teacher)
    frozen.set_eval()
    student = _training_model(orig, opt, width, seed=20)
    out.update(_state(student.resnet50, "student_init."))
    out.update({f"student_{k}": v for k, v in _train(orig, opt, student, 2, 200, teacher=frozen).items()})
    out.update(_checksums(student.resnet50, "student_final."))
    return out, frozen


def case_rnn(orig: types.SimpleNamespace, teacher) -> dict:
    """Seq_Model(frozen CNN = the trained teacher of `steps`, GRU_Heads) forward in train mode (the original's
    model.train() reaches the frozen CNN): per-frame outputs (B, T, C) and the CNN's moved BN statistics."""
    opt = _opt(3)
    cnn = copy.deepcopy(teacher.resnet50)
    torch.manual_seed(31)
    grus = nn.ModuleList([orig.rnn.GRU_Head(opt.hidden_size, 4, SIZES[t]) for t in TASKS]).double()
    seq = orig.rnn.Seq_Model(cnn, grus, opt.tasks)
    for p in cnn.parameters():
        p.requires_grad = False  # --frozen
    seq.train()
    g = torch.Generator().manual_seed(32)
    frames = torch.randn(3, 4, 3, IMAGE, IMAGE, generator=g).double()
    out = seq(frames)
    payload = {"frames": frames.float(), "gru_hidden": 4}
    payload.update(_state(grus, "gru_init."))
    for t in TASKS:
        payload[f"out_{t}"] = out["output"][t].detach()
    payload.update(_checksums(cnn, "cnn_after."))  # BN running statistics of the frozen CNN moved (train mode)
    return payload


def case_metrics(orig: types.SimpleNamespace) -> dict:
    rng = np.random.default_rng(4)
    n = 150
    au_target = (rng.random((n, 8)) < np.linspace(0.05, 0.5, 8)).astype(np.float64)
    au_prob = np.clip(0.6 * au_target + rng.random((n, 8)) * 0.7 - 0.15, 0, 1)
    au_prob[:5, 0] = 0.5  # a probability exactly at the threshold: not predicted (strict >)
    expr_target = rng.integers(0, 7, n)
    expr_logits = rng.normal(size=(n, 7)) + 1.5 * np.eye(7)[expr_target]
    va_target = rng.uniform(-1, 1, (n, 2)).astype(np.float32).astype(np.float64)
    va_pred = 0.6 * va_target + rng.normal(0, 0.3, (n, 2)) + [0.05, -0.1]
    au_pred = (au_prob > 0.5).astype(np.int64)  # _format_estimates
    au_items, au_res = orig.mu.AU_metric(au_pred, au_target.astype(np.int64))
    expr_pred = expr_logits.argmax(-1)
    expr_items, expr_res = orig.mu.EXPR_metric(expr_pred, expr_target)
    va_items, va_res = orig.mu.VA_metric(va_pred, va_target)
    return {
        "au_prob": torch.from_numpy(au_prob), "au_target": torch.from_numpy(au_target),
        "expr_logits": torch.from_numpy(expr_logits), "expr_target": torch.from_numpy(expr_target),
        "va_pred": torch.from_numpy(va_pred), "va_target": torch.from_numpy(va_target),
        "au_f1": float(au_items[0]), "au_acc": float(au_items[1]), "au_score": float(au_res),
        "expr_f1": float(expr_items[0]), "expr_acc": float(expr_items[1]), "expr_score": float(expr_res),
        "ccc_v": float(va_items[0]), "ccc_a": float(va_items[1]), "va_sum": float(va_res),
        "select": float(au_res + expr_res + va_items[0] + va_items[1]),  # train.py _validate: sum of eval_per_task
    }  # fmt: skip


def case_augment(orig: types.SimpleNamespace) -> dict:
    from PIL import Image

    rng = np.random.default_rng(5)
    image = rng.integers(0, 256, (112, 112, 3), dtype=np.uint8)
    out = {"image": torch.from_numpy(image), "seeds": [1, 5]}  # v = 0.134 (flip), 0.623 (no flip)
    mean = torch.tensor(FERPLUS_META["mean"]).view(3, 1, 1)

    def pixels(x: torch.Tensor) -> torch.Tensor:
        """The 0-255 pixel values under x·255 − mean, channel 0 as uint8 (exact: checked), to keep the file small."""
        values = x + mean
        assert float((values - values.round()).abs().max()) < 1e-3
        return values.round()[0].to(torch.uint8)

    for seed in out["seeds"]:
        random.seed(seed)  # the v of augment_transforms is the first random.random() after the seed
        transform = orig.mu.augment_transforms(FERPLUS_META, new_imageSize=[112, 112, 3], override_meta_imsize=True)
        x = transform(Image.fromarray(image))
        out[f"train_{seed}"] = pixels(x)
        out[f"train_{seed}_corner"] = x[:, :4, :4].clone()  # normalised values: ×255 − mean, std 1
    transform = orig.mu.compose_transforms(FERPLUS_META, new_imageSize=[112, 112, 3], override_meta_imsize=True)
    out["eval"] = pixels(transform(Image.fromarray(image)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkout", required=True, type=Path, help=f"a checkout of {REPOSITORY} at {COMMIT}")
    args = parser.parse_args()
    checkout = verify_checkout(args.checkout, FILES, REPOSITORY, COMMIT)
    sys.path.insert(0, str(REPO_ROOT / "src"))
    torch.use_deterministic_algorithms(True)
    orig = _load(checkout)
    steps, teacher = case_steps(orig)
    cases = {
        "va_bins": case_va_bins(orig),
        "losses": case_losses(orig),
        "steps": steps,
        "rnn": case_rnn(orig, teacher),
        "metrics": case_metrics(orig),
        "augment": case_augment(orig),
    }
    meta = {
        "repository": REPOSITORY,
        "commit": COMMIT,
        "script": "benchmarks/parity/multitask.py",
        "command": "python benchmarks/parity/multitask.py --checkout "
        "/path/to/Multitask-Emotion-Recognition-with-Incomplete-Labels",
        "patches": PATCHES,
        "files": FILES,
    }
    write_golden("multitask", cases, meta)


if __name__ == "__main__":
    main()
