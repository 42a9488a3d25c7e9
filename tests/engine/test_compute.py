"""The `compute:` knobs: thread count, channels-last memory format, torch.compile as an opt-in."""

import shutil

import pytest
import torch
from torch import nn

from fermix.engine.checkpoint import load_checkpoint
from fermix.engine.compute import apply_compute, channels_last_wanted, compile_mode
from fermix.errors import FermixError
from tests.engine.runner import quick_overrides, run_train_in_process
from tests.helpers import write_image_folder


@pytest.fixture
def restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(2))


def test_threads_set_the_process_thread_count(restore_threads):
    applied = apply_compute({"threads": 1}, _net(), 32, "cpu")
    assert applied["threads"] == torch.get_num_threads() == 1


def test_null_threads_leave_torch_default(restore_threads):
    before = torch.get_num_threads()
    assert apply_compute({"threads": None}, _net(), 32, "cpu")["threads"] == before


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [("threads", 0, "compute.threads=0"), ("threads", "two", "compute.threads='two'"),
     ("channels_last", "maybe", "compute.channels_last='maybe'"), ("compile", "fastest", "compute.compile='fastest'")],
)  # fmt: skip
def test_bad_knob_values_are_one_sentence(key, value, match):
    with pytest.raises(FermixError, match=match):
        apply_compute({key: value}, _net(), 32, "cpu")


def test_channels_last_auto_follows_the_measured_crossover():
    assert not channels_last_wanted("auto", 64, "cpu")  # slower at the 64-px CPU default
    assert channels_last_wanted("auto", 112, "cpu")
    assert channels_last_wanted("auto", 64, "cuda")
    assert channels_last_wanted(True, 32, "cpu") and not channels_last_wanted(False, 224, "cpu")


def test_compile_modes():
    assert compile_mode(False) is None and compile_mode(None) is None
    assert compile_mode(True) == "default" and compile_mode("max-autotune") == "max-autotune"


def test_channels_last_converts_conv_weights_only_when_wanted():
    net = nn.Sequential(nn.Conv2d(3, 4, 3))
    apply_compute({"channels_last": "auto"}, net, 64, "cpu")
    assert not net[0].weight.is_contiguous(memory_format=torch.channels_last)
    apply_compute({"channels_last": "auto"}, net, 112, "cpu")
    assert net[0].weight.is_contiguous(memory_format=torch.channels_last)


IERN_TINY = (
    "experiment=iern_synthetic_bias", "dataset.train_per_cell=4", "dataset.val_per_cell=1",
    "dataset.test_per_cell=2", "method.channels=8", "data.resize=36", "sched.warmup_epochs=1", "sched.hold_epochs=0",
    "sched.decay_epochs=2",
)  # fmt: skip


@pytest.mark.parametrize("method", ["erm", "iern"])
def test_channels_last_run_trains_and_its_checkpoint_loads(method, tmp_path, restore_threads):
    """iern optimises manually with three optimizers; erm is the automatic path."""
    root = write_image_folder(tmp_path / "data", per_class=6)
    overrides = quick_overrides(root, "trainer.max_epochs=1", "compute.channels_last=true", "compute.threads=1")
    if method == "iern":
        overrides = [o for o in overrides if not o.startswith("dataset")]
        overrides += [*IERN_TINY, f"paths.data_dir={tmp_path / 'synth'}"]
    summary = run_train_in_process(overrides, tmp_path / "run")
    assert 0.0 <= summary["metrics"]["test"]["acc"] <= 1.0
    ckpt = load_checkpoint(tmp_path / "run/checkpoints/best.ckpt")
    assert ckpt["fermix"]["method"] == method and ckpt["fermix"]["config"]["compute"]["channels_last"] is True


@pytest.mark.slow
@pytest.mark.skipif(not any(shutil.which(c) for c in ("g++", "c++", "clang++")), reason="needs a C++ compiler")
def test_compiled_run_keeps_parameter_names(tmp_path):
    """Compilation is in place per child module, so checkpoints of compiled and plain runs are interchangeable."""
    root = write_image_folder(tmp_path / "data", per_class=6)
    run_train_in_process(quick_overrides(root, "trainer.max_epochs=1", "compute.compile=true"), tmp_path / "c")
    run_train_in_process(quick_overrides(root, "trainer.max_epochs=1"), tmp_path / "p")
    compiled = load_checkpoint(tmp_path / "c/checkpoints/best.ckpt")["state_dict"]
    plain = load_checkpoint(tmp_path / "p/checkpoints/best.ckpt")["state_dict"]
    assert compiled.keys() == plain.keys()
    assert all(compiled[k].shape == plain[k].shape for k in plain)
