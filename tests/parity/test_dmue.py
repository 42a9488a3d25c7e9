"""fermix's DMUE training step against the original's (JDAI-CV/FaceX-Zoo addition_module/DMUE).

The golden numbers (tests/golden/dmue/, written by benchmarks/parity/dmue.py) come from the
original's own train_one_epoch on its multi-branch ResNet-18, in float64: 3 classes, 32 px, four
Adam steps over two epochs (3 and 7, so both ramps and both LR tables are in play), dropout seeded
per step, then its evaluation forward. Here fermix gets the same initial weights (regenerated
from the recorded seed, mapped with convert.dmue_to_method), the recipe's optimizer and LR table
(configs/experiment/dmue_affectnet.yaml through engine/optim.py), and runs its own
`training_step` / `param_groups` / `predict` in the repo-exact configuration.
"""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from fermix.data.info import DataInfo
from fermix.data.label_spaces import LabelSpace
from fermix.engine.optim import build_optimizer, build_scheduler
from fermix.methods.dmue import DMUE, convert
from tests.parity.golden import assert_close, load, meta

RECIPE = "experiment=dmue_affectnet"  # the paper recipe's optimizer, LR table and epochs, as fermix train composes them
# The original's code path: the uncertainty MLP and the BN-neck scale outside the optimizer.
REPO_EXACT = {"stem": "msceleb", "train_ue_head": False, "train_bnneck_weight": False, "ramp_alpha": 6}


def seeded_state(specs: list[tuple[str, list[int]]], seed: int) -> dict[str, torch.Tensor]:
    """The initial weights of benchmarks/parity/dmue.py (same draws, same order; checked below by checksums)."""
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


def _sums_norms(tensors: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.stack([t.double().sum() for t in tensors]), torch.stack([t.double().norm() for t in tensors])


def fermix_run() -> dict:
    """fermix's four steps and evaluation on the golden inputs; what the tests compare."""
    gold = load("dmue", "train")
    keys, shapes = gold["keys"], gold["shapes"]
    init = seeded_state(list(zip(keys, shapes, strict=True)), gold["init_seed"])
    c = int(gold["eval_logits"].shape[1])
    space = LabelSpace(f"parity{c}", tuple(f"c{i}" for i in range(c)))
    info = DataInfo(label_space=space, keys=frozenset({"image", "expr"}), image_size=gold["images"].shape[-1])
    torch.manual_seed(0)
    method = DMUE(DMUE.make_config({"name": "dmue", **REPO_EXACT}), info, {"name": "resnet18"}).double()
    method.load_state_dict(convert.dmue_to_method(init))  # strict: every original tensor has its place
    where = convert.dmue_to_method({k: torch.tensor(i) for i, k in enumerate(keys)})  # fermix key -> original index
    order = sorted(where, key=lambda k: int(where[k]))

    recipe = _composed(RECIPE)
    opt = build_optimizer(recipe["optim"], method.param_groups())
    sched = build_scheduler(recipe["sched"], opt, recipe["trainer"]["max_epochs"])["scheduler"]
    scores: list[torch.Tensor] = []
    method.ue.register_forward_hook(lambda _m, _i, out: scores.append(out[0].detach().flatten()))
    images, labels = gold["images"].double(), gold["labels"]
    terms, grads, lrs, epoch = [], [], [], 0
    for step, (e, idx) in enumerate(zip(gold["step_epochs"], gold["step_indices"], strict=True)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # stepping the table ahead of the optimizer, on purpose
            while epoch < e:
                sched.step()
                epoch += 1
        method.on_train_epoch_start(e, recipe["trainer"]["max_epochs"])
        method.train()
        torch.manual_seed(gold["dropout_seed"] + step)
        out = method.training_step({"image": images[idx], "expr": labels[idx]})
        total = sum(v for v in out.values() if v.requires_grad)
        opt.zero_grad()
        total.backward()
        grads.append(
            [torch.stack([p.grad.norm() for p in g["params"] if p.grad is not None]).norm() for g in opt.param_groups]
        )
        lrs.append([g["lr"] for g in opt.param_groups])
        opt.step()
        terms.append({k: v.detach() for k, v in out.items()} | {"total": total.detach()})
    method.eval()
    with torch.no_grad():
        logits = method.predict({"image": images})["expr_logits"]
    state = method.state_dict()
    return {
        "gold": gold,
        "terms": terms,
        "grads": torch.tensor(grads, dtype=torch.float64),
        "lrs": torch.tensor(lrs, dtype=torch.float64),
        "scores": torch.cat(scores),
        "logits": logits,
        "init": _sums_norms([method_init for method_init in (init[keys[int(where[k])]] for k in order)]),
        "final": _sums_norms([state[k] for k in order]),
        "delta": torch.stack([(state[k].double() - init[keys[int(where[k])]].double()).norm() for k in order]),
        "index": torch.tensor([int(where[k]) for k in order]),
    }


@pytest.fixture(scope="module")
def run() -> dict:
    return fermix_run()


def test_golden_files_name_the_original_and_its_commit():
    m = meta("dmue")
    assert m["repository"] == "JDAI-CV/FaceX-Zoo" and m["commit"].startswith("16b793a7")
    assert len(m["patches"]) == 4


def test_regenerated_initial_weights_are_the_originals(run):
    gold, index = run["gold"], run["index"]
    assert len(index) == len(gold["keys"])  # every original tensor mapped to exactly one of fermix's
    sums, norms = run["init"]
    assert_close("initial per-tensor sum", sums, gold["init_sum"][index], atol=0.0)  # the same draws, exactly
    assert_close("initial per-tensor norm", norms, gold["init_norm"][index], atol=0.0)


def test_every_loss_term_of_every_step_matches_the_original(run):
    gold = run["gold"]
    up, down = gold["ramp_up"], gold["ramp_down"]
    expected = {
        "ce": up * gold["ce"],
        "soft": up * 0.5 * gold["soft"],  # w = 0.5
        "sp": up * 1000.0 * gold["sp"],  # γ = 1000
        "aux": down * gold["aux"],
    }
    expected["total"] = sum(expected.values())
    for name, want in expected.items():
        got = torch.stack([t[name] for t in run["terms"]])
        # float64 throughout; the original rounds its soft labels to float32 (train.py): measured
        # 2.7e-8 relative (soft), 1.6e-6 absolute on γ·sp ≈ 170.
        assert_close(f"weighted {name} per step", got, want, atol=1e-9, rtol=2e-7)


def test_uncertainty_scores_match_the_original(run):
    assert_close("s per sample, all steps", run["scores"], run["gold"]["score"], atol=1e-10)  # measured 4.7e-12


def test_learning_rates_and_per_group_gradient_norms_match_the_original(run):
    gold = run["gold"]
    assert_close("lr per step (base, classifiers)", run["lrs"], gold["lr"], atol=0.0)  # the recipe's table
    # Relative: the norms reach 2.5e5 (γ = 1000 on the SP term). The original's float32 soft labels
    # (train.py) move its weights by ~1e-8 relative per step, and Adam carries that on: measured 2.1e-6 at step 4.
    assert_close("gradient norm per step and group", run["grads"], gold["grad_norm"], atol=0.0, rtol=1e-5)


def test_parameters_and_running_statistics_after_four_steps_match_the_original(run):
    gold, index = run["gold"], run["index"]
    sums, norms = run["final"]
    # Sums of up to 2.4M weights (and BN running statistics): measured 5.3e-7 absolute.
    assert_close("final per-tensor sum", sums, gold["final_sum"][index], atol=1e-5)
    assert_close("final per-tensor norm", norms, gold["final_norm"][index], atol=0.0, rtol=1e-8)  # measured 4.9e-10
    # What the four steps changed (Adam moves each weight ~lr per step): measured 4.0e-8 relative.
    assert_close("per-tensor change norm", run["delta"], gold["delta_norm"][index], atol=1e-12, rtol=1e-6)


def test_evaluation_logits_match_the_original(run):
    # Logits of order 1 after four steps: measured 4.3e-8 (the float32 soft labels, as above).
    assert_close("target-branch logits in eval mode", run["logits"], run["gold"]["eval_logits"], atol=1e-6)


def _composed(override: str) -> dict:
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from fermix.cli import config_dir

    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[override])
    return OmegaConf.to_container(cfg, resolve=False, enum_to_str=True)
