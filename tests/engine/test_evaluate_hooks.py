"""The evaluation hooks a method may implement: split-level metrics and per-sample figures."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import nn
from torch.utils.data import DataLoader, Dataset

from fermix.data.info import DataInfo
from fermix.data.label_spaces import LabelSpace
from fermix.engine.evaluate import evaluate_split
from fermix.methods.base import Method, MethodConfig

SPACE = LabelSpace("toy3", ("a", "b", "c"))
LABELS = [0, 1, 2, 2, 1, 0, 2, -1]


class Samples(Dataset):
    def __len__(self) -> int:
        return len(LABELS)

    def __getitem__(self, i: int) -> dict:
        return {"image": torch.full((3, 4, 4), float(i)), "expr": torch.tensor(LABELS[i]), "sample_id": f"s{i}"}


class Hooked(Method):
    """Scores each sample by its image value and reports the class-mean of that score."""

    name = "hooked"
    Config = MethodConfig
    figure_samples_per_class = 2

    def __init__(self, data_info: DataInfo, figures: str = "figure") -> None:
        super().__init__(MethodConfig(), data_info, {})
        self.w = nn.Parameter(torch.ones(1))
        self.kind = figures
        self.seen_expr: list[int] = []
        self.figure_batches: list[dict] = []

    def predict(self, batch):
        self.seen_expr += batch["expr"].tolist()
        value = batch["image"].mean(dim=(1, 2, 3)) * self.w
        return {"expr_logits": F.one_hot(batch["expr"].clamp(min=0), 3).float(), "score": value}

    def evaluation_metrics(self, outputs, targets):
        return {"score_mean": float(outputs["score"].mean()), "n_scored": float(len(outputs["score"]))}

    def evaluation_figures(self, batch):
        self.figure_batches.append(batch)
        self.figure_mode = (self.training, torch.is_grad_enabled())
        with torch.enable_grad():  # the hook may use autograd (Grad-CAM) although evaluation does not
            (batch["image"].sum() * self.w).backward()
        if self.kind == "array":
            return {"panel": np.full((8, 12, 3), 200, dtype=np.uint8)}
        fig = Figure(figsize=(1, 1))
        fig.add_subplot().imshow(batch["image"][:, 0, 0, 0].numpy()[None])
        return {"panel": fig}


def _info() -> DataInfo:
    return DataInfo(SPACE, frozenset({"image", "expr", "sample_id"}), image_size=4)


def _loader() -> DataLoader:
    return DataLoader(Samples(), batch_size=3)


def test_method_metrics_join_the_engines_and_see_the_whole_split_in_order(tmp_path):
    method = Hooked(_info())
    result = evaluate_split(method, _loader(), "test", tmp_path, device=torch.device("cpu"))
    assert result["metrics"]["score_mean"] == pytest.approx(np.mean(range(8)))
    assert result["metrics"]["n_scored"] == 8.0
    assert result["metrics"]["acc"] == 1.0  # the engine's metrics are still there


def test_figures_get_the_first_samples_of_each_class_and_are_written_as_png(tmp_path):
    method = Hooked(_info())
    evaluate_split(method, _loader(), "val", tmp_path, device=torch.device("cpu"))
    (batch,) = method.figure_batches
    assert batch["sample_id"] == ["s0", "s5", "s1", "s4", "s2", "s3"]  # two per class, in class order
    assert batch["expr"].tolist() == [0, 0, 1, 1, 2, 2]
    assert method.figure_mode == (False, False)  # eval mode, under no_grad
    assert method.w.grad is not None and method.training  # ... where it could still back-propagate; mode restored
    assert (tmp_path / "panel_val.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob("*.tmp*"))


def test_an_rgb_array_is_a_figure_too(tmp_path):
    evaluate_split(Hooked(_info(), figures="array"), _loader(), "test", tmp_path, device=torch.device("cpu"))
    import cv2

    image = cv2.imread(str(tmp_path / "panel_test.png"))
    assert image.shape == (8, 12, 3) and int(image[0, 0, 0]) == 200


def test_predict_and_figures_see_labels_in_the_models_label_space(tmp_path):
    method = Hooked(_info())
    swap = torch.tensor([2, 1, 0])  # evaluation dataset's class i is the model's class swap[i]
    result = evaluate_split(method, _loader(), "test", tmp_path, device=torch.device("cpu"), target_map=swap)
    assert method.seen_expr == [swap[y].item() if y >= 0 else -1 for y in LABELS]
    assert result["metrics"]["acc"] == 1.0
    assert method.figure_batches[0]["sample_id"][:2] == ["s2", "s3"]  # model class 0 = dataset class 2


def test_a_method_metric_may_not_shadow_an_engine_metric(tmp_path):
    method = Hooked(_info())
    method.evaluation_metrics = lambda outputs, targets: {"acc": 0.0}
    with pytest.raises(ValueError, match="'acc'"):
        evaluate_split(method, _loader(), "test", tmp_path, device=torch.device("cpu"))


def test_methods_without_hooks_add_nothing(tmp_path):
    class Plain(Hooked):
        figure_samples_per_class = 0
        evaluation_metrics = Method.evaluation_metrics

    result = evaluate_split(Plain(_info()), _loader(), "test", tmp_path, device=torch.device("cpu"))
    assert set(result["metrics"]) == {"acc", "mean_class_acc", "macro_f1"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["confusion_test.png", "predictions_test.csv"]
