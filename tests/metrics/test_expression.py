import math

import numpy as np
import pytest
import torch
from sklearn.metrics import balanced_accuracy_score, f1_score

from fermix.metrics import ExpressionMetrics, scalar_metrics


def one_hot_logits(pred: list[int], num_classes: int) -> torch.Tensor:
    """Logits whose argmax is `pred`."""
    return torch.nn.functional.one_hot(torch.tensor(pred), num_classes).float() * 5.0 - 1.0


def run(metric: ExpressionMetrics, batches: list[tuple[list[int], list[int]]]) -> dict[str, torch.Tensor]:
    for target, pred in batches:
        metric.update(one_hot_logits(pred, metric.num_classes), torch.tensor(target))
    return metric.compute()


def test_matches_hand_computation_averaging_only_over_classes_present():
    # 4 classes; class 3 never occurs in the targets (but is predicted once).
    target = [0, 0, 0, 0, 1, 1, 2, 2]
    pred = [0, 0, 0, 1, 1, 3, 2, 0]
    out = run(ExpressionMetrics(num_classes=4), [(target, pred)])

    # rows = true: class 0 -> 3 right, 1 as class 1; class 1 -> 1 right, 1 as 3; class 2 -> 1 right, 1 as 0
    expected_confusion = torch.tensor([[3, 1, 0, 0], [0, 1, 0, 1], [1, 0, 1, 0], [0, 0, 0, 0]])
    assert torch.equal(out["confusion"], expected_confusion)
    assert out["confusion"].dtype == torch.long
    assert out["acc"].item() == pytest.approx(5 / 8)
    # recalls 3/4, 1/2, 1/2; class 3 has no support -> NaN and not averaged
    per_class = out["per_class_acc"]
    assert per_class[:3].tolist() == pytest.approx([0.75, 0.5, 0.5])
    assert math.isnan(per_class[3].item())
    assert out["mean_class_acc"].item() == pytest.approx((0.75 + 0.5 + 0.5) / 3)
    # F1 = 2tp / (2tp + fp + fn): class 0: 6/(6+1+1); class 1: 2/(2+1+1); class 2: 2/(2+0+1)
    assert out["macro_f1"].item() == pytest.approx((6 / 8 + 2 / 4 + 2 / 3) / 3)
    # averaging over all 4 classes would have given a different (wrong) number
    assert out["mean_class_acc"].item() != pytest.approx((0.75 + 0.5 + 0.5 + 0.0) / 4)


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
def test_agrees_with_sklearn_on_random_split_with_missing_class():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(300, 7, generator=gen)
    target = torch.randint(0, 6, (300,), generator=gen)  # class 6 absent
    metric = ExpressionMetrics(num_classes=7)
    metric.update(logits, target)
    out = metric.compute()
    y, p = target.numpy(), logits.argmax(1).numpy()
    present = np.unique(y)
    assert out["acc"].item() == pytest.approx(float((y == p).mean()))
    assert out["mean_class_acc"].item() == pytest.approx(balanced_accuracy_score(y, p))
    assert out["macro_f1"].item() == pytest.approx(f1_score(y, p, labels=present, average="macro"))


def test_uneven_batches_give_same_result_as_one_batch():
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(101, 5, generator=gen)
    target = torch.randint(-1, 5, (101,), generator=gen)

    whole = ExpressionMetrics(num_classes=5)
    whole.update(logits, target)
    expected = whole.compute()

    split = ExpressionMetrics(num_classes=5)
    for start, stop in [(0, 1), (1, 40), (40, 41), (41, 41), (41, 97), (97, 101)]:
        split.update(logits[start:stop], target[start:stop])
    got = split.compute()

    assert torch.equal(got["confusion"], expected["confusion"])
    for key in ("acc", "mean_class_acc", "macro_f1", "per_class_acc"):
        torch.testing.assert_close(got[key], expected[key], equal_nan=True)


def test_split_mean_class_acc_differs_from_batch_averaged_balanced_accuracy():
    batches = [([0, 0, 0, 1], [0, 0, 0, 0]), ([1, 1, 1], [1, 1, 1])]
    split = run(ExpressionMetrics(num_classes=2), batches)
    per_batch = [run(ExpressionMetrics(num_classes=2), [b])["mean_class_acc"].item() for b in batches]

    # batch 1: recalls 1 and 0 -> 0.5; batch 2: only class 1, recall 1 -> 1.0; their mean 0.75
    assert np.mean(per_batch) == pytest.approx(0.75)
    # whole split: class 0 recall 3/3, class 1 recall 3/4 -> 0.875
    assert split["mean_class_acc"].item() == pytest.approx(0.875)


def test_unlabelled_targets_are_ignored():
    labelled = run(ExpressionMetrics(num_classes=3), [([0, 1, 2], [0, 2, 2])])
    mixed = run(ExpressionMetrics(num_classes=3), [([0, -1, 1, -1, 2], [0, 1, 2, 0, 2])])
    assert torch.equal(mixed["confusion"], labelled["confusion"])
    assert mixed["acc"].item() == pytest.approx(labelled["acc"].item())
    assert mixed["mean_class_acc"].item() == pytest.approx(labelled["mean_class_acc"].item())


def test_reset_forgets_previous_split():
    metric = ExpressionMetrics(num_classes=3)
    run(metric, [([0, 1, 2], [1, 2, 0])])
    metric.reset()
    out = run(metric, [([0, 1], [0, 1])])
    assert out["acc"].item() == 1.0
    assert int(out["confusion"].sum()) == 2


def test_split_without_labels_gives_nan_scalars():
    out = run(ExpressionMetrics(num_classes=3), [([-1, -1], [0, 1])])
    assert all(math.isnan(out[k].item()) for k in ("acc", "mean_class_acc", "macro_f1"))
    assert int(out["confusion"].sum()) == 0


def test_rejects_logits_with_wrong_class_count():
    with pytest.raises(ValueError, match="logits must have shape"):
        ExpressionMetrics(num_classes=3).update(torch.zeros(2, 4), torch.zeros(2, dtype=torch.long))


def test_scalar_metrics_keeps_only_scalars_as_python_floats():
    out = run(ExpressionMetrics(num_classes=3), [([0, 1, 2], [0, 1, 1])])
    scalars = scalar_metrics(out)
    assert set(scalars) == {"acc", "mean_class_acc", "macro_f1"}
    assert all(type(v) is float for v in scalars.values())
    assert scalars["acc"] == pytest.approx(2 / 3)
