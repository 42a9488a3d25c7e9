"""The task read from DataInfo: output size, the original's criterion views, metrics keys (spec §1.5, §4)."""

import pytest
import torch
import torch.nn.functional as F

from fermix.data.info import DataInfo
from fermix.data.label_spaces import LabelSpace, get_label_space
from fermix.errors import FermixError
from fermix.methods.mult.task import task_of

MOSEI7 = LabelSpace("mosei7", ("-3", "-2", "-1", "0", "1", "2", "3"))
SHAPES = {"text": [20, 300], "audio": [20, 74], "vision": [20, 35]}


def iemocap_info() -> DataInfo:
    keys = frozenset({"text", "audio", "vision", "expr", "sample_id"})
    return DataInfo(get_label_space("iemocap4"), keys, extras={"task": "iemocap4", "modalities": SHAPES})


def mosei_info(score: bool = True) -> DataInfo:
    keys = frozenset({"text", "audio", "vision", "expr", "sample_id"} | ({"score"} if score else set()))
    return DataInfo(MOSEI7, keys, extras={"task": "mosei7", "modalities": SHAPES})


def test_iemocap_is_four_binary_pairs_with_the_originals_views():
    task = task_of(iemocap_info(), "m")
    assert task.out_dim == 8
    logits, labels = torch.randn(3, 8), torch.randint(0, 2, (3, 4))
    pred, target = task.views(logits, {"expr": labels})
    assert pred.shape == (12, 2) and target.shape == (12,)
    assert torch.equal(pred[1], logits[0, 2:4]) and target[1] == labels[0, 1]  # pair e of row b is row 4b + e
    expected = torch.stack([F.cross_entropy(logits[:, 2 * e : 2 * e + 2], labels[:, e]) for e in range(4)]).mean()
    assert torch.allclose(task.loss(logits, {"expr": labels}), expected)
    assert task.prediction_outputs(logits) == {}  # 4 binary tasks, not one classification


def test_mosei_cls_is_seven_way_and_doubles_as_expr_logits_and_regression_is_l1_on_the_score():
    cls = task_of(mosei_info(), "m")
    assert cls.out_dim == 7 and set(cls.prediction_outputs(torch.zeros(2, 7))) == {"expr_logits"}
    reg = task_of(mosei_info(), "m", "regression")
    assert reg.out_dim == 1 and reg.loss_name == "l1"
    pred, score = torch.tensor([[0.5], [-1.0]]), torch.tensor([1.0, 1.0])
    assert torch.allclose(reg.loss(pred, {"score": score}), torch.tensor(1.25))


def test_metrics_report_avg_acc_for_both_tasks():
    labels = torch.tensor([[1, 0, 0, 0], [0, 1, 0, 1]])
    logits = torch.zeros(2, 8)
    logits[:, 0::2] = 1.0  # "absent" everywhere
    values = task_of(iemocap_info(), "m").metrics(logits, {"expr": labels})
    assert values["avg_acc"] == pytest.approx((0.5 + 0.5 + 1.0 + 0.5) / 4)
    prefixed = task_of(iemocap_info(), "m").metrics(logits, {"expr": labels}, prefix="te_")
    assert prefixed == {"te_avg_acc": values["avg_acc"], "te_top1_acc": values["top1_acc"]}
    assert values["top1_acc"] == 1.0  # only the first sample has one emotion; the tie goes to the first emotion
    mosei = task_of(mosei_info(), "m")
    onehot = F.one_hot(torch.tensor([6, 3]), 7).float()  # predicts +3 and 0
    out = mosei.metrics(onehot, {"score": torch.tensor([2.6, -0.4]), "expr": torch.tensor([6, 3])})
    assert out["avg_acc"] == out["acc7"] == 1.0


def test_image_datasets_unknown_tasks_and_regression_without_scores_are_refused():
    image = DataInfo(get_label_space("basic7"), frozenset({"image", "expr"}))
    with pytest.raises(FermixError, match="needs a multimodal dataset"):
        task_of(image, "mult")
    odd = DataInfo(MOSEI7, frozenset({"expr"}), extras={"task": "mosi2", "modalities": SHAPES})
    with pytest.raises(FermixError, match="not `mosi2`"):
        task_of(odd, "mult")
    with pytest.raises(FermixError, match="needs `score`"):
        task_of(mosei_info(score=False), "mult", "regression")
    with pytest.raises(FermixError, match="cls or regression"):
        task_of(mosei_info(), "mult", "ordinal")


def test_mosei_binary_option_reaches_the_tasks_metrics_and_unknown_names_are_refused():
    import numpy as np

    from fermix.metrics.multimodal import mosei_cls_scores, mosei_metrics

    g = torch.Generator().manual_seed(1)
    logits, score = torch.randn(40, 7, generator=g), (torch.rand(40, generator=g) * 6 - 3).round()
    for binary in ("standard", "causalmer", "mult"):
        values = task_of(mosei_info(), "m", "cls", binary).metrics(logits, {"score": score})
        expected = mosei_metrics(mosei_cls_scores(logits), score, binary=binary)
        assert all(np.isclose(values[k], expected[k], equal_nan=True) for k in expected)
    with pytest.raises(FermixError, match="mosei_binary must be one of standard, causalmer, mult"):
        task_of(mosei_info(), "m", "cls", "paper")


def test_softmax_head_is_one_four_way_choice_ignoring_samples_without_exactly_one_emotion():
    task = task_of(iemocap_info(), "m", iemocap_head="softmax")
    assert task.out_dim == 4
    labels = torch.tensor([[0, 0, 1, 0], [0, 1, 0, 1], [0, 0, 0, 0], [1, 0, 0, 0]])
    logits = torch.randn(4, 4)
    _, target = task.views(logits, {"expr": labels})
    assert target.tolist() == [2, -1, -1, 0]
    expected = F.cross_entropy(logits[[0, 3]], torch.tensor([2, 0]))
    assert torch.allclose(task.loss(logits, {"expr": labels}), expected)


def test_softmax_head_metrics_read_the_argmax_as_the_one_present_emotion():
    task = task_of(iemocap_info(), "m", iemocap_head="softmax")
    labels = torch.tensor([[0, 0, 1, 0], [1, 0, 0, 0]])
    logits = torch.tensor([[0.1, 0.2, 3.0, -1.0], [0.0, 2.0, 0.5, 0.4]])  # right, then wrong (says emotion 1)
    values = task.metrics(logits, {"expr": labels})
    assert values["top1_acc"] == 0.5
    # row 0: all four answers right; row 1: emotion 0 missed and emotion 1 wrongly present, so 2 of 4 right
    assert values["avg_acc"] == pytest.approx((4 + 2) / 8)


def test_unknown_iemocap_head_is_one_sentence():
    with pytest.raises(FermixError, match="iemocap_head must be pairs or softmax"):
        task_of(iemocap_info(), "m", iemocap_head="sigmoid")
    with pytest.raises(FermixError, match="the mosei7 task has its own head"):
        task_of(mosei_info(), "m", iemocap_head="softmax")
