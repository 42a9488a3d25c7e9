"""Spec §8.1 and §8.7: masking through the model, per-task vs masked batching, heads, stages."""

from __future__ import annotations

import copy

import pytest
import torch

from fermix.data.info import DataInfo
from fermix.data.label_spaces import LabelSpace
from fermix.errors import FermixError
from fermix.methods.base import Stage
from fermix.methods.multitask import Multitask, MultitaskConfig

BACKBONE = {"name": "small_cnn", "width": 8}


def info(num_aus: int = 8) -> DataInfo:
    space = LabelSpace("abaw7", ("neutral", "anger", "disgust", "fear", "happiness", "sadness", "surprise"))
    return DataInfo(space, frozenset({"image", "expr", "au", "va"}), image_size=32,
                    extras={"au_names": [f"AU{i}" for i in range(num_aus)]})  # fmt: skip


def method(**kw) -> Multitask:
    torch.manual_seed(0)
    return Multitask(MultitaskConfig(n_students=2, **kw), info(), BACKBONE)


def sub_batch(task: str, n: int, seed: int) -> dict[str, torch.Tensor]:
    """A sub-batch labelled for `task` only (the others -1 / NaN), as the samplers deliver."""
    g = torch.Generator().manual_seed(seed)
    b = {
        "image": torch.randn(n, 3, 32, 32, generator=g),
        "expr": torch.full((n,), -1),
        "au": torch.full((n, 8), float("nan")),
        "va": torch.full((n, 2), float("nan")),
        "index": torch.arange(n),
    }
    if task == "expr":
        b["expr"] = torch.randint(0, 7, (n,), generator=g)
    elif task == "au":
        b["au"] = torch.randint(0, 2, (n, 8), generator=g).float()
    else:
        b["va"] = torch.rand(n, 2, generator=g) * 2 - 1
    return b


def per_task() -> dict[str, dict[str, torch.Tensor]]:
    return {t: sub_batch(t, 4, i) for i, t in enumerate(("expr", "au", "va"))}


def mixed(batch: dict[str, dict[str, torch.Tensor]]) -> dict[str, dict[str, torch.Tensor]]:
    return {"mixed": {k: torch.cat([b[k] for b in batch.values()]) for k in ("image", "expr", "au", "va", "index")}}


def test_heads_are_expr_au_va_with_sizes_from_the_data() -> None:
    m = Multitask(MultitaskConfig(n_students=1), info(num_aus=5), BACKBONE)
    heads = m.members[0].heads
    assert list(heads) == ["expr", "au", "va"]
    assert [heads[t][-1].out_features for t in heads] == [7, 5, 40]
    assert heads["expr"][3].num_features == 128  # the 128-d head feature


def test_a_dataset_without_au_labels_is_refused_in_one_sentence() -> None:
    no_au = DataInfo(info().label_space, frozenset({"image", "expr"}), image_size=32)
    with pytest.raises(FermixError, match="action-unit"):
        Multitask(MultitaskConfig(), no_au, BACKBONE)


@pytest.mark.parametrize("stage", ["teacher", "student0"])
def test_per_task_and_masked_batching_give_the_same_loss_with_bn_off(stage: str) -> None:
    m = method()
    m.begin_stage(Stage(stage, 1))
    m.eval()  # BN on running statistics: the only difference between the two is BN's batch statistics
    batch = per_task()
    a = m.training_step(batch)
    b = m.training_step(mixed(batch))
    assert set(a) == set(b)
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k


def test_rows_without_a_task_label_get_no_gradient_on_that_head_and_do_not_change_its_loss() -> None:
    m = method()
    m.begin_stage(Stage("teacher", 1))
    m.eval()
    batch = mixed(per_task())["mixed"]
    captured = {}
    net = m.members[0]
    hook = net.heads["au"][4].register_forward_hook(
        lambda _m, _i, out: captured.setdefault("au", out.retain_grad() or out)
    )
    loss = sum(m.training_step({"mixed": batch}).values())
    loss.backward()
    hook.remove()
    grad = captured["au"].grad
    labelled = ~batch["au"].isnan().any(1)
    assert grad[~labelled].abs().max() == 0 and grad[labelled].abs().max() > 0
    # The AU term is finite although unlabelled rows hold NaN, and those rows' inputs do not reach it.
    au_term = m.training_step({"mixed": batch})["au"]
    assert torch.isfinite(au_term)
    other = dict(batch)
    other["image"] = batch["image"].clone()
    other["image"][~labelled] = torch.randn_like(other["image"][~labelled]) * 100
    assert torch.equal(m.training_step({"mixed": other})["au"], au_term)


def test_student_stage_trains_only_its_member_and_keeps_the_teacher_in_eval_mode() -> None:
    m = method()
    m.begin_stage(Stage("student1", 1))
    m.train()
    assert m.members[2].training and not m.members[0].training and not m.members[1].training
    trainable = {id(p) for g in m.param_groups() for p in g["params"]}
    assert trainable == {id(p) for p in m.members[2].parameters()}
    assert not any(p.requires_grad for p in m.members[0].parameters())
    before = copy.deepcopy(m.members[0].state_dict())
    m.training_step(per_task())  # the teacher's BN running statistics must not move
    after = m.members[0].state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_students_are_fresh_networks_not_copies_of_the_teacher() -> None:
    m = method()
    m.begin_stage(Stage("teacher", 1))
    teacher_w = m.members[0].heads["expr"][1].weight.detach().clone()
    torch.manual_seed(123)
    m.begin_stage(Stage("student0", 1))
    assert not torch.equal(m.members[1].heads["expr"][1].weight, teacher_w)


def test_stages_are_teacher_then_each_seeded_student() -> None:
    m = method()
    assert [(s.name, s.max_epochs, s.seed_offset) for s in m.stages()] == [
        ("teacher", 8, 0),
        ("student0", 3, 1),
        ("student1", 3, 2),
    ]
    assert [s.name for s in method(stages="teacher").stages()] == ["teacher"]


def test_ensemble_averages_member_probabilities_and_expectations() -> None:
    m = method()
    m.end_stages()
    m.eval()
    x = {"image": torch.randn(3, 3, 32, 32)}
    with torch.no_grad():
        out = m.predict(x)
        students = [m._member_outputs(m.members[k], x["image"]) for k in (1, 2)]
    assert torch.allclose(
        out["expr_logits"].exp(), (students[0]["expr_prob"] + students[1]["expr_prob"]) / 2, atol=1e-6
    )
    assert torch.allclose(out["au_logits"].sigmoid(), (students[0]["au_prob"] + students[1]["au_prob"]) / 2, atol=1e-5)
    assert torch.allclose(out["va"], (students[0]["va"] + students[1]["va"]) / 2, atol=1e-6)
    assert out["members_expr_prob"].shape == (3, 3, 7)  # teacher + 2 students


def test_unknown_option_values_are_refused() -> None:
    with pytest.raises(FermixError, match="batching"):
        method(batching="both")
