"""Spec §8.7 (CNN-RNN) and §1: a frozen multitask CNN under per-task bidirectional GRUs, per-frame outputs."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from fermix.data.info import DataInfo
from fermix.data.label_spaces import LabelSpace
from fermix.engine.checkpoint import FORMAT, FORMAT_VERSION, load_checkpoint
from fermix.engine.optim import build_optimizer
from fermix.errors import FermixError
from fermix.methods.base import Stage
from fermix.methods.multitask import Multitask, MultitaskConfig
from fermix.methods.multitask.sequence import MultitaskRNN, MultitaskRNNConfig, SequenceNet
from fermix.registry import METHODS
from tests.engine.runner import compose_job, run_train_in_process

BACKBONE = {"name": "small_cnn", "width": 8}
T = 4
ADAM = {"_target_": "torch.optim.Adam", "lr": 1e-4, "betas": [0.5, 0.999], "weight_decay": 0.0}


def info() -> DataInfo:
    space = LabelSpace("abaw7", ("neutral", "anger", "disgust", "fear", "happiness", "sadness", "surprise"))
    return DataInfo(space, frozenset({"image", "expr", "au", "va"}), image_size=32,
                    extras={"au_names": [f"AU{i}" for i in range(8)]})  # fmt: skip


def cnn_checkpoint(
    path: Path, n_students: int = 1, backbone: dict | None = None, data_info: DataInfo | None = None
) -> tuple[Path, Multitask]:
    """A fermix multitask checkpoint as `fermix train` writes it (fermix section + `method.` state)."""
    torch.manual_seed(1)
    backbone = backbone or BACKBONE
    data_info = data_info or info()
    cnn = Multitask(MultitaskConfig(n_students=n_students), data_info, backbone)
    for p in cnn.parameters():  # distinct members, not the initialisation the RNN starts from
        p.data.add_(torch.randn_like(p) * 0.1)
    meta = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "method": "multitask",
        "config": {"method": {"name": "multitask", "head_hidden": 128}, "backbone": dict(backbone)},
        "label_space": data_info.label_space.to_dict(), "data_info": data_info.to_dict(),
    }  # fmt: skip
    torch.save({"fermix": meta, "state_dict": {f"method.{k}": v for k, v in cnn.state_dict().items()}}, path)
    return path, cnn


def rnn(path: Path | None, **kw) -> MultitaskRNN:
    torch.manual_seed(0)
    config = MultitaskRNNConfig(cnn_checkpoint=str(path) if path else None, n_students=kw.pop("n_students", 2), **kw)
    return MultitaskRNN(config, info(), BACKBONE)


def windows(task: str, b: int, seed: int) -> dict:
    """B windows of T frames labelled for `task` only, flattened to B·T rows as the window collate delivers."""
    g = torch.Generator().manual_seed(seed)
    n = b * T
    batch = {
        "image": torch.randn(n, 3, 32, 32, generator=g),
        "expr": torch.full((n,), -1),
        "au": torch.full((n, 8), math.nan),
        "va": torch.full((n, 2), math.nan),
        "index": torch.arange(n),
        "seq_len": T,
    }
    if task == "expr":
        batch["expr"] = torch.randint(0, 7, (n,), generator=g)
    elif task == "au":
        batch["au"] = torch.randint(0, 2, (n, 8), generator=g).float()
    else:
        batch["va"] = torch.rand(n, 2, generator=g) * 2 - 1
    return batch


def per_task(b: int = 3) -> dict:
    return {t: windows(t, b, i) for i, t in enumerate(("expr", "au", "va"))}


@pytest.fixture
def ckpt(tmp_path) -> Path:
    return cnn_checkpoint(tmp_path / "cnn.ckpt")[0]


def test_the_method_is_registered_with_the_variants_faithful_defaults() -> None:
    assert METHODS.get("multitask_rnn") is MultitaskRNN
    c = MultitaskRNNConfig()
    assert (c.teacher_epochs, c.student_epochs, c.n_students, c.gru_hidden) == (3, 3, 5, 64)
    assert (c.balance, c.ensemble, c.frozen_cnn_mode, c.cnn_member) == (False, "all", "train", "teacher")


@pytest.mark.parametrize("stage", ["teacher", "student0", "student1"])
def test_cnn_parameters_are_frozen_and_absent_from_the_optimizer(ckpt, stage: str) -> None:
    m = rnn(ckpt)
    m.begin_stage(Stage(stage, 1))
    opt = build_optimizer(ADAM, m.param_groups())
    in_opt = {id(p) for g in opt.param_groups for p in g["params"]}
    for member in m.members:
        assert not any(p.requires_grad for p in member.cnn.parameters())
        assert not in_opt & {id(p) for p in member.cnn.parameters()}
    active = m.members[m.member_names.index(stage)]
    gru_params = [p for name, p in active.named_parameters() if not name.startswith("cnn.")]
    assert in_opt == {id(p) for p in gru_params}  # the active member's GRU heads and output layers only
    terms = m.train().training_step(per_task())
    sum(terms.values()).backward()
    assert all(p.grad is None for member in m.members for p in member.cnn.parameters())
    assert all(p.grad is not None for p in gru_params)


@pytest.mark.parametrize("member", ["teacher", "student0"])
def test_every_member_starts_from_the_chosen_cnn_member(tmp_path, member: str) -> None:
    path, cnn = cnn_checkpoint(tmp_path / "cnn.ckpt")
    m = rnn(path, cnn_member=member)
    m.begin_stage(Stage("teacher", 1))
    m.begin_stage(Stage("student1", 1))
    source = cnn.members[0 if member == "teacher" else 1].state_dict()
    other = cnn.members[1 if member == "teacher" else 0].state_dict()
    for k in (0, 2):  # the teacher and student1 stages re-created these members
        state = m.members[k].cnn.state_dict()
        assert all(torch.equal(state[key], source[key]) for key in source)
        assert not all(torch.equal(state[key], other[key]) for key in other)


def test_outputs_are_per_frame_b_t_c_and_flatten_in_b_t_order(ckpt) -> None:
    m = rnn(ckpt).eval()
    net = m.members[0]
    frames = torch.randn(2, T, 3, 32, 32)
    outputs, features = net.sequence(frames)
    assert {k: tuple(v.shape) for k, v in outputs.items()} == {"expr": (2, T, 7), "au": (2, T, 8), "va": (2, T, 40)}
    assert all(v.shape == (2, T, 128) for v in features.values())
    flat, _ = net(frames)
    assert all(torch.equal(flat[k], outputs[k].reshape(2 * T, -1)) for k in outputs)
    out = m.predict({"image": frames.flatten(0, 1), "seq_len": T})  # the ensemble over B·T frame rows
    assert out["expr_logits"].shape == (2 * T, 7) and out["va"].shape == (2 * T, 2)
    assert out["members_au_prob"].shape == (2 * T, 3, 8)


def test_each_frames_output_reads_the_whole_window_in_both_directions(ckpt) -> None:
    net = rnn(ckpt).eval().members[0]
    frames = torch.randn(1, T, 3, 32, 32)
    base = net.sequence(frames)[0]["expr"]
    first, last = frames.clone(), frames.clone()
    first[:, 0] += 1.0
    last[:, -1] += 1.0
    assert not torch.allclose(net.sequence(first)[0]["expr"][:, -1], base[:, -1])  # forward direction
    assert not torch.allclose(net.sequence(last)[0]["expr"][:, 0], base[:, 0])  # backward direction


def test_the_gru_head_is_one_bidirectional_layer_of_64_relu_then_linear() -> None:
    net = SequenceNet(rnn(None).members[0].cnn, {"expr": 7, "au": 8, "va": 40}, gru_hidden=64)
    for task, gru in net.grus.items():
        assert (gru.input_size, gru.hidden_size, gru.num_layers, gru.bidirectional, gru.batch_first) == (
            128, 64, 1, True, True,
        )  # fmt: skip
        assert net.fcs[task].in_features == 128
    frames = torch.randn(2, T, 3, 32, 32)
    net.eval()
    with torch.no_grad():
        _, feats = net.cnn(frames.flatten(0, 1))
        h = torch.relu(net.grus["au"](feats["au"].reshape(2, T, 128))[0])
        assert torch.allclose(net.sequence(frames)[0]["au"], net.fcs["au"](h))


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_frozen_cnn_mode_sets_the_cnns_bn_and_dropout_mode_while_training(ckpt, mode: str) -> None:
    m = rnn(ckpt, frozen_cnn_mode=mode)
    m.begin_stage(Stage("student0", 1))
    m.train()
    active, teacher = m.members[1], m.members[0]
    assert all(mod.training == (mode == "train") for mod in active.cnn.modules())  # BN, dropout: the whole CNN
    assert all(not mod.training for mod in teacher.modules())  # the teacher distils in eval mode either way
    assert active.grus.training
    bn = next(mod for mod in active.cnn.modules() if isinstance(mod, torch.nn.BatchNorm2d))
    before = bn.running_mean.clone()
    m.training_step(per_task())
    assert torch.equal(bn.running_mean, before) == (mode == "eval")  # train: the frozen CNN's statistics drift
    m.eval()
    assert not any(mod.training for mod in m.modules())


def test_student_distils_from_the_teacher_over_the_flattened_frames(ckpt) -> None:
    m = rnn(ckpt, lambda_teacher=1.0)
    m.begin_stage(Stage("teacher", 1))
    m.begin_stage(Stage("student0", 1))
    m.members[1].load_state_dict(m.members[0].state_dict())  # student == teacher: distillation gradients vanish
    m.eval()  # BN on running statistics, so both see the same features
    terms = m.training_step(per_task(2))
    sum(terms.values()).backward()
    assert all(p.grad.abs().max() < 1e-5 for p in m.param_groups()[0]["params"])


def test_the_ensemble_includes_the_teacher_by_default(ckpt) -> None:
    assert rnn(ckpt).ensemble_indices() == [0, 1, 2]
    assert rnn(ckpt, ensemble="students").ensemble_indices() == [1, 2]


def test_a_batch_that_is_not_windows_is_a_one_sentence_error(ckpt) -> None:
    m = rnn(ckpt).eval()
    with pytest.raises(FermixError, match=r"data\.windows\.seq_len"):
        m.predict({"image": torch.randn(4, 3, 32, 32)})


def test_bad_cnn_checkpoints_are_one_sentence_errors(tmp_path, ckpt) -> None:
    cases = {
        None: "needs method.cnn_checkpoint",
        tmp_path / "missing.ckpt": "does not exist",
    }
    erm = tmp_path / "erm.ckpt"
    state = torch.load(ckpt, weights_only=True)
    torch.save({**state, "fermix": {**state["fermix"], "method": "erm"}}, erm)
    cases[erm] = "is a erm checkpoint, not a multitask"
    other = tmp_path / "resnet.ckpt"
    torch.save({**state, "fermix": {**state["fermix"], "config": {"backbone": {"name": "resnet18"}}}}, other)
    cases[other] = "backbone=resnet18"
    for path, message in cases.items():
        with pytest.raises(FermixError, match=message):
            rnn(path).begin_stage(Stage("teacher", 1))
    with pytest.raises(FermixError, match="no member student3"):
        rnn(ckpt, cnn_member="student3").begin_stage(Stage("teacher", 1))
    wide = cnn_checkpoint(tmp_path / "wide.ckpt", backbone={"name": "small_cnn", "width": 16})[0]
    with pytest.raises(FermixError, match="does not fit"):
        rnn(wide).begin_stage(Stage("teacher", 1))


@pytest.mark.parametrize(
    ("option", "message"),
    [({"balance": True}, "balance=false"), ({"batching": "masked"}, "per_task"),
     ({"frozen_cnn_mode": "off"}, "frozen_cnn_mode"), ({"cnn_member": "pupil"}, "cnn_member")],
)  # fmt: skip
def test_unsupported_options_are_refused(option: dict, message: str) -> None:
    with pytest.raises(FermixError, match=message):
        rnn(None, **option)


def _tiny(tmp_path: Path, *extra: str) -> list[str]:
    return [
        "dataset=synthetic_partial",
        "dataset.train_per_cell=8",
        "dataset.val_per_cell=4",
        "dataset.test_per_cell=4",
        "dataset.subjects_per_domain=[1,1,1]",
        "dataset.image_size=32",
        "data.image_size=32",
        "data.resize=32",
        "data.batch_size=4",
        f"paths.data_dir={tmp_path / 'data'}",
        "backbone.width=8",
        "data.num_workers=0",
        "method.teacher_epochs=1",
        "method.student_epochs=1",
        "method.n_students=1",
        "trainer.accelerator=cpu",
        "trainer.num_sanity_val_steps=0",
        "logger=none",
        "progress=none",
        *extra,
    ]


def test_cnn_then_rnn_then_fermix_test_end_to_end(tmp_path) -> None:
    from fermix.engine.testing import run_test

    cnn_run, rnn_run = tmp_path / "cnn", tmp_path / "rnn"
    run_train_in_process(["experiment=multitask_synthetic_partial", *_tiny(tmp_path)], cnn_run)
    cnn_ckpt = cnn_run / "checkpoints" / "best.ckpt"
    summary = run_train_in_process(
        ["experiment=multitask_rnn_synthetic_partial", f"method.cnn_checkpoint={cnn_ckpt}", *_tiny(tmp_path)], rnn_run
    )
    assert summary["config"]["data"]["windows"]["seq_len"] == 4  # the synthetic recipe
    rnn_state = load_checkpoint(rnn_run / "checkpoints" / "best.ckpt")["state_dict"]
    cnn_state = load_checkpoint(cnn_ckpt)["state_dict"]
    teacher = {k: v for k, v in cnn_state.items() if k.startswith("method.members.0.")}
    bn_stats = ("running_mean", "running_var", "num_batches_tracked")
    for member in (0, 1):  # both members keep the CNN teacher's weights; frozen_cnn_mode=train: BN statistics drift
        copy = {key: rnn_state[key.replace("members.0.", f"members.{member}.cnn.")] for key in teacher}
        assert all(torch.equal(copy[k], v) for k, v in teacher.items() if not k.endswith(bn_stats))
        assert not all(torch.equal(copy[k], v) for k, v in teacher.items() if k.endswith("running_mean"))
    assert "method.members.1.grus.expr.weight_hh_l0_reverse" in rnn_state
    assert {"teacher/au_score", "student0/expr_score", "ensemble/ccc_v"} <= set(summary["metrics"]["test"])

    cnn_ckpt.rename(tmp_path / "moved.ckpt")  # fermix test needs nothing but the RNN checkpoint
    overrides = [f"ckpt={rnn_run / 'checkpoints' / 'best.ckpt'}", "split=val", "accelerator=cpu", "progress=none"]
    result = run_test(compose_job("test", overrides, tmp_path / "eval"))
    trained = summary["metrics"]["val"]
    for key in ("select", "ensemble/au_score_tuned", "teacher/expr_score", "student0/ccc_a"):
        assert result["metrics"]["val"][key] == pytest.approx(trained[key], abs=1e-6), key
