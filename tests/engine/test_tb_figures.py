"""TensorBoard validation figures: `val/confusion` and `val/samples` after every validation (not the
sanity check), drawn from the validation's own counts on fixed samples; none without TensorBoard."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from fermix.engine import figures
from fermix.engine.callbacks import build_callbacks
from fermix.engine.figures import ValidationFigures, display_images, sample_grid_figure, sample_indices
from tests.engine.runner import run_train_in_process

TINY = [
    "dataset=synthetic",
    "dataset.train_per_cell=2",
    "dataset.val_per_cell=1",
    "dataset.test_per_cell=1",
    "backbone.width=8",
    "data.image_size=32",
    "data.resize=32",
    "data.batch_size=16",
    "data.num_workers=0",
    "trainer.accelerator=cpu",
    "trainer.num_sanity_val_steps=1",  # the sanity check must not log figures
    "logger=default",
    "progress=none",
]
CLASSES = 7


def _events(run_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    return EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"images": 0, "scalars": 0}).Reload()


@pytest.fixture(scope="module")
def tb_run(tmp_path_factory):
    """Two epochs with TensorBoard on; records what the callback handed to the drawing functions."""
    root = tmp_path_factory.mktemp("tb_figures")
    drawn: dict[str, list] = {"confusion": [], "targets": []}
    draw_confusion, draw_grid = figures.confusion_figure, figures.sample_grid_figure

    def confusion(counts, *args, **kwargs):
        drawn["confusion"].append(np.asarray(counts).copy())
        return draw_confusion(counts, *args, **kwargs)

    def grid(images, targets, *args, **kwargs):
        drawn["targets"].append(list(targets))
        return draw_grid(images, targets, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(figures, "confusion_figure", confusion)
        mp.setattr(figures, "sample_grid_figure", grid)
        summary = run_train_in_process([*TINY, "trainer.max_epochs=2", f"paths.data_dir={root / 'data'}"], root / "run")
    return root / "run", summary, drawn


def test_every_validation_logs_the_confusion_and_the_sample_grid_at_the_step_of_its_metrics(tb_run):
    run_dir, _, _ = tb_run
    events = _events(run_dir)
    val_steps = [e.step for e in events.Scalars("val/acc")]
    assert len(val_steps) == 2  # two epochs; the sanity check logged nothing
    for tag in ("val/confusion", "val/samples"):
        logged = events.Images(tag)
        assert [e.step for e in logged] == val_steps, tag
        picture = Image.open(io.BytesIO(logged[-1].encoded_image_string))
        assert picture.width >= 300 and picture.height >= 200


def test_the_confusion_is_the_validations_own_counts(tb_run):
    run_dir, summary, drawn = tb_run
    accs = [e.value for e in _events(run_dir).Scalars("val/acc")]
    assert len(drawn["confusion"]) == 2
    for counts, acc in zip(drawn["confusion"], accs, strict=True):
        assert counts.shape == (CLASSES, CLASSES)
        assert counts.sum() == summary["split_sizes"]["val"]
        assert np.trace(counts) / counts.sum() == pytest.approx(acc, abs=1e-6)


def test_the_sample_grid_shows_the_same_samples_of_every_class_each_epoch(tb_run):
    _, _, drawn = tb_run
    first, second = drawn["targets"]
    assert first == second
    assert len(first) == 16 and set(first) == set(range(CLASSES))


def test_tensorboard_with_figures_off_logs_metrics_but_no_images(tmp_path):
    run_train_in_process(
        [*TINY, "trainer.max_epochs=1", "logger.figures=false", f"paths.data_dir={tmp_path / 'data'}"], tmp_path / "run"
    )
    events = _events(tmp_path / "run")
    assert events.Scalars("val/acc") and events.Tags()["images"] == []


@pytest.mark.parametrize(
    ("logger", "expected"),
    [
        ({"tensorboard": True, "csv": True, "figures": True, "sample_images": 5}, 5),
        ({"tensorboard": True, "csv": True, "figures": False, "sample_images": 16}, None),
        ({"tensorboard": False, "csv": True, "figures": True, "sample_images": 16}, None),
        ({"tensorboard": False, "csv": False}, None),
    ],
)
def test_the_figure_callback_exists_only_with_tensorboard_and_figures_on(tmp_path, logger, expected):
    cfg = OmegaConf.create({"checkpoint": {"monitor": "val/acc"}, "logger": logger, "progress": "none"})
    found = [c for c in build_callbacks(cfg, tmp_path, has_logger=True) if isinstance(c, ValidationFigures)]
    assert [c.sample_images for c in found] == ([] if expected is None else [expected])


def test_sample_indices_take_the_classes_in_turn_in_split_order():
    labels = np.array([0, 0, 0, 1, 1, 2, -1, 2])
    assert sample_indices(labels, 5, len(labels)) == [0, 3, 5, 1, 4]
    assert sample_indices(labels, 8, len(labels)) == [0, 3, 5, 1, 4, 7, 2, 6]  # unlabelled last
    assert sample_indices(None, 3, 10) == [0, 1, 2]
    assert sample_indices(labels, 50, len(labels)) == [0, 3, 5, 1, 4, 7, 2, 6]


def test_display_images_undo_the_input_normalisation():
    pixels = torch.rand(2, 3, 4, 4)
    mean, std = [0.5, 0.4, 0.3], [0.2, 0.25, 0.5]
    normalised = (pixels - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    shown = display_images(normalised, mean, std)
    assert shown.shape == (2, 4, 4, 3)
    np.testing.assert_allclose(shown, pixels.permute(0, 2, 3, 1).numpy(), atol=1e-6)


def test_sample_grid_captions_each_face_with_truth_prediction_and_probability():
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])
    fig = sample_grid_figure(np.zeros((2, 8, 8, 3)), [0, 1], probs, ["neutral", "happy", "sad"], columns=2)
    texts = {t.get_text(): t.get_color() for t in fig.axes[0].texts}
    assert texts == {"true: neutral\npred: neutral 0.70": "#1a7f37", "true: happy\npred: sad 0.60": "#cf222e"}
    with pytest.raises(ValueError):
        sample_grid_figure(np.zeros((2, 8, 8, 3)), [0], probs, ["neutral", "happy", "sad"])


def test_a_figure_that_fails_is_reported_once_and_training_goes_on(tmp_path, caplog):
    from types import SimpleNamespace

    from lightning.pytorch.loggers import TensorBoardLogger

    trainer = SimpleNamespace(
        sanity_checking=False,
        is_global_zero=True,
        loggers=[TensorBoardLogger(save_dir=str(tmp_path), name="tb")],
        fit_loop=SimpleNamespace(epoch_loop=SimpleNamespace(_batches_that_stepped=3)),
        global_step=3,
        precision="32-true",
        current_epoch=0,
    )
    classes = SimpleNamespace(classes=("neutral", "happy"))
    module = SimpleNamespace(
        method=SimpleNamespace(data_info=SimpleNamespace(label_space=classes)),
        device=torch.device("cpu"),
        last_val_confusion=torch.zeros(3, 3),  # does not match the two classes: drawing it fails
    )
    callback = ValidationFigures()
    with caplog.at_level("WARNING", logger="fermix"):
        callback.on_validation_end(trainer, module)
        callback.on_validation_end(trainer, module)
    warnings = [r for r in caplog.records if "figures are off" in r.getMessage()]
    assert len(warnings) == 1 and "ValueError" in warnings[0].getMessage()
