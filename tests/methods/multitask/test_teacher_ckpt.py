"""`method.teacher_ckpt`: students distil from a saved teacher; a checkpoint that does not fit gets one sentence."""

from __future__ import annotations

from dataclasses import asdict

import pytest
import torch

from fermix.data.info import DataInfo
from fermix.data.label_spaces import LabelSpace
from fermix.engine.checkpoint import FORMAT, FORMAT_VERSION, save_atomic
from fermix.errors import FermixError
from fermix.methods.base import Stage
from fermix.methods.multitask import Multitask, MultitaskConfig
from tests.methods.multitask.test_model import BACKBONE, info


def saved(tmp_path, m: Multitask, name: str = "teacher.ckpt", **meta_changes) -> str:
    """`m` as a fermix checkpoint (the engine's layout: `method.` keys and a fermix section)."""
    config = {"method": {"name": m.name, **asdict(m.config)}, "backbone": dict(m.backbone_cfg)}
    meta = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "method": m.name, "config": config,
        "label_space": m.data_info.label_space.to_dict(), "data_info": m.data_info.to_dict(),
    }  # fmt: skip
    meta.update(meta_changes)
    path = tmp_path / name
    save_atomic({"state_dict": {f"method.{k}": v for k, v in m.state_dict().items()}, "fermix": meta}, path)
    return str(path)


def student_run(path: str, data: DataInfo | None = None, backbone=None, **kw) -> Multitask:
    torch.manual_seed(1)
    return Multitask(MultitaskConfig(n_students=1, teacher_ckpt=path, **kw), data or info(), backbone or BACKBONE)


def test_the_teacher_comes_from_the_checkpoint_and_is_not_a_stage(tmp_path) -> None:
    torch.manual_seed(0)
    trained = Multitask(MultitaskConfig(n_students=1), info(), BACKBONE)
    path = saved(tmp_path, trained)
    m = student_run(path)
    assert [s.name for s in m.stages()] == ["student0"]
    m.begin_stage(m.stages()[0])
    expected = trained.members[0].state_dict()
    assert all(torch.equal(v, expected[k]) for k, v in m.members[0].state_dict().items())
    assert not any(p.requires_grad for p in m.members[0].parameters())


def test_the_teacher_stage_hands_on_its_last_epoch_unless_best_is_asked_for() -> None:
    torch.manual_seed(0)
    default = Multitask(MultitaskConfig(n_students=1), info(), BACKBONE).stages()
    best = Multitask(MultitaskConfig(n_students=1, teacher_weights="best"), info(), BACKBONE).stages()
    assert [(s.name, s.next_from) for s in default] == [("teacher", "last"), ("student0", "best")]
    assert best[0].next_from == "best"
    assert [s.epochs_key for s in default] == ["method.teacher_epochs", "method.student_epochs"]


def _refused(path: str, *fragments: str, **kw) -> None:
    m = student_run(path, **kw)
    with pytest.raises(FermixError) as err:
        m.begin_stage(Stage("student0", 1))
    text = str(err.value)
    assert "\n" not in text and text.count(". ") == 0, text  # one sentence
    for fragment in fragments:
        assert fragment in text, text


def test_a_checkpoint_of_another_method_is_refused(tmp_path) -> None:
    torch.manual_seed(0)
    _refused(saved(tmp_path, Multitask(MultitaskConfig(), info(), BACKBONE), method="erm"), "erm", "not a multitask")


def test_a_teacher_of_other_expression_classes_is_refused(tmp_path) -> None:
    torch.manual_seed(0)
    other = DataInfo(LabelSpace("other7", tuple("abcdefg")), frozenset({"image", "expr", "au", "va"}), image_size=32,
                     extras={"au_names": [f"AU{i}" for i in range(8)]})  # fmt: skip
    _refused(saved(tmp_path, Multitask(MultitaskConfig(), other, BACKBONE)), "expression classes")


def test_a_teacher_of_other_action_units_is_refused(tmp_path) -> None:
    torch.manual_seed(0)
    _refused(saved(tmp_path, Multitask(MultitaskConfig(), info(num_aus=6), BACKBONE)), "action units")


def test_a_teacher_with_another_backbone_or_head_size_is_refused(tmp_path) -> None:
    torch.manual_seed(0)
    path = saved(tmp_path, Multitask(MultitaskConfig(head_hidden=16), info(), BACKBONE))
    _refused(path, "does not fit", "head_hidden 16")
    _refused(saved(tmp_path, Multitask(MultitaskConfig(), info(), BACKBONE), "b.ckpt"), "backbone=small_cnn",
             backbone={"name": "resnet18", "pretrained": None})  # fmt: skip


def test_a_file_that_is_not_a_fermix_checkpoint_is_refused(tmp_path) -> None:
    path = tmp_path / "plain.pth"
    torch.save({"backbone.model.conv1_7x7_s2.weight": torch.zeros(1)}, path)
    _refused(str(path), "not a fermix checkpoint")


def test_teacher_ckpt_with_a_teacher_only_run_is_refused() -> None:
    with pytest.raises(FermixError, match="nothing to train"):
        Multitask(MultitaskConfig(stages="teacher", teacher_ckpt="t.ckpt"), info(), BACKBONE)
