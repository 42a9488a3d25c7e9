"""Resumed runs continue their CSV and TensorBoard logs at the checkpoint instead of restarting them;
the loggers are built from configs/logger's `_target_` entries, each switched on or off by its key."""

from __future__ import annotations

import csv

import pytest
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from omegaconf import OmegaConf

from fermix.engine.checkpoint import FORMAT, FORMAT_VERSION, save_atomic
from fermix.engine.loggers import ResumableCSVLogger, ResumePoint, build_loggers
from fermix.errors import FermixError
from tests.engine.runner import composed_group

# What a killed run left: epoch 0 (steps 0-41, checkpoint at global step 42), then the start of
# epoch 1: the learning-rate monitor's row (no epoch) at step 42 and one training step, and a torn line.
BEFORE_KILL = """epoch,lr-Adam/all,step,train/loss_step,val/acc
,0.01,0,,
0,,9,0.9,
0,,41,,0.5
,0.0075,42,,
1,,49,0.7,
1,,5"""


LOGGER = composed_group("logger", "default")


def _cfg(**switches):
    return OmegaConf.create({"logger": {**LOGGER, **switches}})


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_resumed_csv_keeps_the_rows_before_the_checkpoint_and_appends_after_them(tmp_path):
    log_dir = tmp_path / "csv"
    log_dir.mkdir()
    (log_dir / "metrics.csv").write_text(BEFORE_KILL)
    logger = ResumableCSVLogger(save_dir=str(tmp_path), name="csv", version="", resume=ResumePoint(0, 42))
    logger.log_metrics({"lr-Adam/all": 0.0075}, step=42)
    logger.log_metrics({"train/loss_step": 0.6, "epoch": 1, "train/new": 1.0}, step=49)  # a key not seen before
    logger.save()
    rows = _rows(log_dir / "metrics.csv")
    assert [(r["epoch"], r["step"]) for r in rows] == [("", "0"), ("0", "9"), ("0", "41"), ("", "42"), ("1", "49")]
    assert rows[-1]["train/loss_step"] == "0.6" and rows[-1]["train/new"] == "1.0" and rows[2]["val/acc"] == "0.5"
    assert list(rows[0]) == sorted(rows[0])  # one sorted header, as Lightning writes it


def test_a_fresh_run_in_the_same_folder_starts_a_new_csv(tmp_path):
    (tmp_path / "csv").mkdir()
    (tmp_path / "csv" / "metrics.csv").write_text(BEFORE_KILL)
    logger = ResumableCSVLogger(save_dir=str(tmp_path), name="csv", version="", resume=None)
    logger.log_metrics({"train/loss_step": 0.3, "epoch": 0}, step=9)
    logger.save()
    assert [(r["epoch"], r["step"]) for r in _rows(tmp_path / "csv" / "metrics.csv")] == [("0", "9")]


def test_resumed_tensorboard_hides_the_replayed_steps(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = _cfg(tensorboard=True, csv=False)
    (first,) = build_loggers(cfg, tmp_path)
    for step in range(10):
        first.log_metrics({"loss": float(step)}, step=step)
    first.finalize("killed")
    (resumed,) = build_loggers(cfg, tmp_path, resume=ResumePoint(0, 6))
    for step in range(6, 12):
        resumed.log_metrics({"loss": 100.0 + step}, step=step)
    resumed.finalize("success")
    events = EventAccumulator(str(tmp_path / "tensorboard")).Reload().Scalars("loss")
    assert [e.step for e in events] == list(range(12))
    assert [e.value for e in events] == [float(s) for s in range(6)] + [100.0 + s for s in range(6, 12)]


def test_resume_point_reads_epoch_and_step_from_the_checkpoint(tmp_path):
    assert ResumePoint.of(None) is None
    path = tmp_path / "last.ckpt"
    save_atomic(
        {
            "fermix": {"format": FORMAT, "format_version": FORMAT_VERSION, "epoch": 2, "global_step": 126},
            "state_dict": {"w": torch.zeros(3)},
        },
        path,
    )
    assert ResumePoint.of(path) == ResumePoint(2, 126)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(FermixError, match="cannot be read"):
        ResumePoint.of(path)


@pytest.mark.parametrize(
    ("switches", "expected"),
    [({}, [TensorBoardLogger, ResumableCSVLogger]), ({"tensorboard": False}, [ResumableCSVLogger]),
     ({"tensorboard": False, "csv": False}, [])],
)  # fmt: skip
def test_each_switched_on_target_is_built_in_the_run_folder(tmp_path, switches, expected):
    loggers = build_loggers(_cfg(**switches), tmp_path, version="teacher")
    assert [type(lg) for lg in loggers] == expected
    assert all(lg.save_dir == str(tmp_path) and lg.version == "teacher" for lg in loggers)
    assert [lg.name for lg in loggers] == [
        {TensorBoardLogger: "tensorboard", ResumableCSVLogger: "csv"}[t] for t in expected
    ]


def test_a_logger_added_by_target_is_built_and_a_bad_one_is_one_sentence(tmp_path):
    extra = {"_target_": "fermix.engine.loggers.ResumableCSVLogger", "_partial_": True, "flush_logs_every_n_steps": 5}
    cfg = _cfg(tensorboard=False)
    cfg.logger.targets.second_csv = extra
    assert [lg.name for lg in build_loggers(cfg, tmp_path)] == ["csv", "second_csv"]
    cfg.logger.targets.second_csv._target_ = "lightning.pytorch.loggers.CSVLoggr"
    with pytest.raises(FermixError, match=r"logger.targets.second_csv._target_ .* cannot be imported \(did you mean"):
        build_loggers(cfg, tmp_path)
