"""`fermix train experiment=dmue_synthetic_noisy` and `fermix test ckpt=` on CPU, tiny sizes;
and a 2-process CPU DDP run, where each rank's half-batch is checked by the validity rule."""

from pathlib import Path

import pandas as pd
import pytest
import torch

from fermix.data.info import DataInfo
from fermix.engine.build import build_method
from fermix.engine.checkpoint import load_checkpoint
from tests.conftest import run_fermix
from tests.engine.runner import run_train_in_process

TINY = [
    "experiment=dmue_synthetic_noisy", "dataset.image_size=32", "dataset.train_per_cell=8",
    "dataset.val_per_cell=3", "dataset.test_per_cell=3", "dataset.subjects_per_domain=[4,2,2]",
    "dataset.cache_dir=synthetic_cache", "backbone.width=8", "data.image_size=32", "data.resize=36",
    "data.num_workers=0", "trainer.accelerator=cpu", "trainer.num_sanity_val_steps=0", "logger=csv",
    "progress=none", "method.ramp_alpha=1",
]  # fmt: skip


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("dmue_cli")


@pytest.fixture(scope="module")
def trained(workdir) -> Path:
    run = workdir / "run"
    cache = f"dataset.cache_dir={workdir / 'synthetic_cache'}"
    run_train_in_process([*TINY, cache, "data.batch_size=28", "trainer.max_epochs=2"], run)
    return run


def test_train_runs_on_cpu_and_logs_every_loss_term_and_the_skipped_count(trained):
    assert (trained / "summary.json").is_file() and (trained / "checkpoints/best.ckpt").is_file()
    logged = pd.read_csv(trained / "csv/metrics.csv")
    for name in ("ce", "soft", "sp", "aux", "s_mean", "s_std", "skipped"):
        assert logged[f"train/{name}_epoch" if name != "skipped" else "train/skipped"].notna().any(), name


def test_skipped_batches_advance_nothing_but_the_skipped_count(trained):
    """Spec §7.1.9 through the engine: Adam stepped once per trained batch; a skipped one left no trace."""
    skipped = int(pd.read_csv(trained / "csv/metrics.csv")["train/skipped"].dropna().sum())
    ckpt = torch.load(trained / "checkpoints/last.ckpt", weights_only=True)
    steps = {int(s["step"]) for s in ckpt["optimizer_states"][0]["state"].values()}
    batches = 2 * 6  # 168 class-balanced draws per epoch / 28, 2 epochs
    assert 0 < skipped < batches
    assert steps == {batches - skipped}


def test_fermix_test_rebuilds_dmue_from_the_checkpoint(trained, workdir, fermix_main):
    ckpt = trained / "checkpoints/best.ckpt"
    result = fermix_main(["test", f"ckpt={ckpt}", "split=val"], workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    (out,) = (trained / "eval").glob("val_*")
    assert (out / "predictions_val.csv").is_file()


def test_the_checkpoint_exports_to_the_target_branch(trained):
    ckpt = load_checkpoint(trained / "checkpoints/last.ckpt")
    meta = ckpt["fermix"]
    method = build_method(meta["config"]["method"], meta["config"]["backbone"], DataInfo.from_dict(meta["data_info"]))
    method.load_state_dict({k.removeprefix("method."): v for k, v in ckpt["state_dict"].items()})
    exported = method.export()
    method.eval()
    image = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(exported(image), method.predict({"image": image})["expr_logits"], atol=1e-5)


def test_two_process_cpu_ddp_skips_together_when_any_rank_has_an_invalid_half_batch(workdir):
    """56 per step = 28 per rank: each rank's shard is valid (every class twice) about half the time."""
    args = [
        "train",
        *TINY,
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "data.batch_size=56",
        "trainer.max_epochs=2",
        "paths.runs_dir=ddp_runs",
    ]
    result = run_fermix(args, workdir, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = (workdir / "ddp_runs/dmue_synthetic_noisy").iterdir()
    skipped = pd.read_csv(run / "csv/metrics.csv")["train/skipped"].dropna()
    ckpt = torch.load(run / "checkpoints/last.ckpt", weights_only=True)
    steps = {int(s["step"]) for s in ckpt["optimizer_states"][0]["state"].values()}
    batches = 2 * 3  # 168 training draws per epoch / 56
    assert 0 < skipped.sum() < batches
    assert steps == {batches - int(skipped.sum())}  # Adam stepped exactly for the batches every rank could train


def test_legacy_eval_mode_starts_over_in_train_mode_every_epoch_through_the_engine(workdir, monkeypatch):
    """The original calls model.train() at each epoch start and model.eval() at its mid-epoch test:
    with legacy_eval_after_steps=1 the first trained step of *every* epoch runs in train mode and the
    later ones in eval mode. Lightning's validation loop restores the mode it found (eval), so a
    method that never switches back would train epochs 2 and 3 entirely in eval mode."""
    from fermix.methods.dmue import DMUE

    seen: list[tuple[int, bool]] = []
    real = DMUE.training_step

    def spy(self, batch):
        out = real(self, batch)
        if out:  # a trained step: the mode its forward ran in
            seen.append((self._epoch, self.dropout.training and self.trunk.training))
        return out

    monkeypatch.setattr(DMUE, "training_step", spy)
    run = workdir / "legacy_eval"
    cache = f"dataset.cache_dir={workdir / 'synthetic_cache'}"
    overrides = [*TINY, cache, "data.batch_size=42", "trainer.max_epochs=3", "method.legacy_eval_after_steps=1"]
    run_train_in_process(overrides, run)
    per_epoch = {e: [mode for epoch, mode in seen if epoch == e] for e in range(3)}
    assert all(len(modes) >= 2 for modes in per_epoch.values()), per_epoch  # the check needs two steps an epoch
    for epoch, modes in per_epoch.items():
        assert modes == [True] + [False] * (len(modes) - 1), f"epoch {epoch}: {modes}"
