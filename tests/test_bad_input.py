"""The bad-input table (docs/errors.md): each way a user can hand fermix something unusable ends in
one `fermix: error:` sentence naming the problem, a non-zero exit, no traceback, and nothing
written earlier is lost.

Each row writes its bad input under its own working directory, which also holds a copy of a finished
run (`runs/erm_imagefolder/prior`, trained once per module): that copy hashes the same before and
after the failing command. Rows about a run directory (a resume with a bad override, a loss that
turns NaN after a resume) also check that its checkpoints are unchanged and still load. Rows run
in-process (`fermix_main`, fast) unless marked `fresh` (a new `python -m fermix`, as a user runs it).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from fermix.engine.checkpoint import FORMAT_VERSION, load_checkpoint
from tests.conftest import assert_one_sentence_error, run_fermix
from tests.engine.runner import quick_overrides, run_train_in_process
from tests.helpers import write_image_folder

CLASSES = ("happy", "sad", "surprise")
TINY = [
    "dataset=imagefolder", "backbone.width=8", "data.image_size=32", "data.resize=32", "data.batch_size=8",
    "data.num_workers=0", "trainer.accelerator=cpu", "trainer.num_sanity_val_steps=0", "logger=csv",
    "progress=none", "trainer.max_epochs=1",
]  # fmt: skip
PRIOR = Path("runs/erm_imagefolder/prior")
# Epoch 0 trains normally, epoch 1 at a learning rate that overflows the weights: the loss turns NaN.
DIVERGE = ["sched=table", "+sched.groups.all=[0.001,1e38]"]


@pytest.fixture(scope="module")
def prior(tmp_path_factory) -> Path:
    """A finished tiny run (faces/ beside it) that every row copies into its working directory."""
    work = tmp_path_factory.mktemp("prior")
    faces = write_image_folder(work / "faces", classes=CLASSES, per_class=8, size=32)
    run = work / PRIOR
    run_train_in_process(quick_overrides(faces, "trainer.max_epochs=1"), run)
    assert (run / "summary.json").is_file() and (run / "checkpoints" / "last.ckpt").is_file()
    return run


@dataclass
class Case:
    """What a row's set-up sees: its working directory (the CLI's cwd) and the prior run copied into it."""

    cwd: Path
    prior: Path
    main: Callable

    def write_faces(self) -> Path:
        return write_image_folder(self.cwd / "faces", classes=CLASSES, per_class=8, size=32)

    def ckpt(self) -> dict:
        return torch.load(self.prior / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)


@dataclass
class Row:
    id: str
    setup: Callable[[Case], list[str]]  # writes the bad input; returns the command line
    fragments: tuple[str, ...]  # what the one sentence must name
    fresh: bool = False  # run in a new process
    run_dir: str | None = None  # a run dir (relative to cwd) whose checkpoints must survive unchanged
    before_hydra: bool = False  # refused before Hydra creates anything
    extra: dict = field(default_factory=dict)


# --- set-ups --------------------------------------------------------------------------------------
def _train(root: Path | str, *extra: str) -> list[str]:
    return ["train", *TINY, f"dataset.root={root}", *extra]


def _missing_root(case: Case) -> list[str]:
    return _train("does_not_exist")


def _empty_root(case: Case) -> list[str]:
    (case.cwd / "empty").mkdir()
    return _train("empty")


def _empty_class_folder(case: Case) -> list[str]:
    (case.write_faces() / "anger").mkdir()
    return _train("faces")


def _bad_file(name: str, content: Callable[[], bytes]) -> Callable[[Case], list[str]]:
    def setup(case: Case) -> list[str]:
        faces = case.write_faces()
        (faces / "sad" / name).write_bytes(content())
        return _train("faces")

    return setup


def _real_jpeg() -> bytes:
    from skimage import data

    return cv2.imencode(".jpg", data.astronaut()[100:228, 150:278, ::-1])[1].tobytes()


def _half_jpeg() -> bytes:
    whole = _real_jpeg()
    return whole[: len(whole) // 2]


def _unknown_policy(case: Case) -> list[str]:
    return _train(case.write_faces(), "data.bad_images=maybe")


def _manifest(case: Case, rows: list[tuple[str, str, str]]) -> Path:
    faces = case.write_faces()
    lines = ["path,label,split", *(",".join(r) for r in rows)]
    (faces / "labels.csv").write_text("\n".join(lines) + "\n")
    return faces


def _label_out_of_range(case: Case) -> list[str]:
    rows = [(f"{c}/{c}_00{i}.png", str(k), "") for k, c in enumerate(CLASSES) for i in range(4)]
    rows[5] = (rows[5][0], "7", "")
    faces = _manifest(case, rows)
    return _train(faces, "dataset.manifest=labels.csv", "dataset.classes=[happy,sad,surprise]")


def _label_not_in_space(case: Case) -> list[str]:
    rows = [(f"{c}/{c}_00{i}.png", c, "") for c in CLASSES for i in range(4)]
    rows[3] = (rows[3][0], "bored", "")
    faces = _manifest(case, rows)
    return _train(faces, "dataset.manifest=labels.csv", "dataset.label_space=basic7")


def _rafdb_label_out_of_range(case: Case) -> list[str]:
    root = case.cwd / "raf"
    (root / "EmoLabel").mkdir(parents=True)
    (root / "EmoLabel" / "list_patition_label.txt").write_text("train_00001.jpg 4\ntrain_00002.jpg 9\n")
    return ["train", *[a for a in TINY if a != "dataset=imagefolder"], "dataset=rafdb", f"dataset.root={root}"]


def _empty_val_folder(case: Case) -> list[str]:
    root = write_image_folder(case.cwd / "split", classes=CLASSES, per_class=4, splits=["train", "test"])
    (root / "val").mkdir()
    return _train(root)


def _no_training_rows(case: Case) -> list[str]:
    rows = [(f"{c}/{c}_00{i}.png", c, "test" if i % 2 else "val") for c in CLASSES for i in range(4)]
    faces = _manifest(case, rows)
    return _train(faces, "dataset.manifest=labels.csv")


def _truncated(case: Case) -> Path:
    data = (case.prior / "checkpoints" / "best.ckpt").read_bytes()
    cut = case.cwd / "cut.ckpt"
    cut.write_bytes(data[: len(data) // 2])
    return cut


def _newer(case: Case) -> Path:
    ckpt = case.ckpt()
    ckpt["fermix"]["format_version"] = FORMAT_VERSION + 1
    path = case.cwd / "newer.ckpt"
    torch.save(ckpt, path)
    return path


def _foreign(case: Case) -> Path:
    path = case.cwd / "other.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(1)}}, path)  # a Lightning/torch file fermix did not write
    return path


def _a_file(case: Case) -> Path:
    path = case.cwd / "notes.txt"
    path.write_text("a file where a run folder was meant to go")
    return path


def _resumable(case: Case) -> Path:
    """A second copy of the prior run to resume into (the prior copy itself is only ever read)."""
    target = case.cwd / "runs" / "erm_imagefolder" / "resumable"
    shutil.copytree(case.prior, target)
    return target


def _diverging_run(case: Case) -> list[str]:
    """One good epoch in-process (its last.ckpt is the 'earlier' checkpoint), then resume to two
    epochs in a fresh process: epoch 1 runs at lr 1e38 and its loss turns NaN."""
    args = _train(case.write_faces(), *DIVERGE, "hydra.run.dir=runs/diverge")
    first = case.main(args, case.cwd)
    assert first.returncode == 0, first.stderr[-3000:]
    return [*args, "resume=auto", "trainer.max_epochs=2"]


ROWS = [
    Row("dataset_root_missing", _missing_root, ("does_not_exist", "does not exist")),
    Row("dataset_root_empty", _empty_root, ("no images found in", "empty")),
    Row("class_folder_without_images", _empty_class_folder, ("class folder", "anger", "has no images")),
    Row("corrupt_image_mid_dataset", _bad_file("broken.jpg", lambda: b"this is not a jpeg"),
        ("cannot read image", "broken.jpg", "not a decodable image")),
    Row("zero_byte_image", _bad_file("empty.png", lambda: b""), ("empty.png", "the file is empty")),
    Row("truncated_jpeg", _bad_file("half.jpg", _half_jpeg), ("half.jpg", "truncated")),
    Row("unknown_bad_images_policy", _unknown_policy, ("data.bad_images=maybe", "fail, skip")),
    Row("manifest_label_index_out_of_range", _label_out_of_range,
        ("label 7 on line 7 of manifest", "labels.csv", "out of range for 3 classes")),
    Row("manifest_label_not_in_label_space", _label_not_in_space,
        ("label `bored` on line 5 of manifest", "not a class of `basic7`")),
    Row("rafdb_label_out_of_range", _rafdb_label_out_of_range, ("line 2 of", "label `9`", "1..7")),
    Row("empty_val_folder", _empty_val_folder, ("split val of dataset imagefolder has no samples", "val")),
    Row("split_without_samples", _no_training_rows,
        ("split train of dataset imagefolder has no samples", "test 6", "val 6")),
    Row("truncated_checkpoint_tested", lambda c: ["test", f"ckpt={_truncated(c)}"], ("cut.ckpt", "truncated")),
    Row("truncated_checkpoint_resumed", lambda c: _train(c.write_faces(), f"resume={_truncated(c)}"),
        ("cut.ckpt", "truncated")),
    Row("foreign_checkpoint_tested", lambda c: ["test", f"ckpt={_foreign(c)}"],
        ("other.ckpt", "is not a fermix checkpoint")),
    Row("checkpoint_of_another_method_resumed",
        lambda c: _train(c.write_faces(), "method=dmue", f"resume={c.prior / 'checkpoints/last.ckpt'}"),
        ("cannot resume", "last.ckpt", "erm", "method=dmue")),
    Row("newer_checkpoint_format_tested", lambda c: ["test", f"ckpt={_newer(c)}"],
        ("newer.ckpt", "newer fermix", f"format {FORMAT_VERSION + 1}")),
    Row("newer_checkpoint_format_resumed", lambda c: _train(c.write_faces(), f"resume={_newer(c)}"),
        ("newer.ckpt", "newer fermix")),
    Row("nan_loss_after_resume", _diverging_run, ("non-finite loss at epoch 1 step", "term `ce` is nan"),
        fresh=True, run_dir="runs/diverge"),
    Row("unknown_key_on_resume", lambda c: _train("faces", "resume=auto", f"hydra.run.dir={_resumable(c)}",
                                                  "trainer.max_epoch=3"),
        ("unknown config key `trainer.max_epoch`", "did you mean `trainer.max_epochs`"),
        fresh=True, run_dir="runs/erm_imagefolder/resumable", before_hydra=True),
    Row("unknown_key", lambda c: _train("faces", "data.batchsize=8"),
        ("unknown config key `data.batchsize`", "did you mean `data.batch_size`"), before_hydra=True),
    Row("unknown_group_option", lambda c: _train("faces", "method=ermm"),
        ("unknown method `ermm`", "did you mean `erm`", "dmue"), before_hydra=True),
    Row("integer_key_given_text", lambda c: _train("faces", "trainer.max_epochs=abc"),
        ("trainer.max_epochs must be an integer", "`abc`"), before_hydra=True),
    Row("integer_key_given_a_fraction", lambda c: _train("faces", "data.batch_size=1.5"),
        ("data.batch_size must be an integer", "`1.5`"), before_hydra=True),
    Row("number_key_given_a_word", lambda c: _train("faces", "data.augment.hflip=yes"),
        ("data.augment.hflip must be a number", "`yes`"), before_hydra=True),
    Row("new_run_into_a_folder_that_holds_a_run", lambda c: _train("faces", f"hydra.run.dir={_resumable(c)}"),
        ("holds a run already", "continue it with resume=auto"), run_dir="runs/erm_imagefolder/resumable",
        before_hydra=True),
    Row("run_dir_that_is_a_file", lambda c: _train("faces", f"hydra.run.dir={_a_file(c)}"),
        ("is a file; give a folder for the run",), before_hydra=True),
    Row("crop_larger_than_the_resized_face", lambda c: _train("faces", "data.image_size=128", "data.resize=72"),
        ("data.image_size=128 is larger than data.resize=72", "68% black padding"), before_hydra=True),
    Row("batch_size_zero", lambda c: _train("faces", "data.batch_size=0"),
        ("data.batch_size=0 must be at least 1",), before_hydra=True),
    Row("batch_size_negative", lambda c: _train("faces", "data.batch_size=-4"),
        ("data.batch_size=-4 must be at least 1",), before_hydra=True),
    Row("num_workers_negative", lambda c: _train("faces", "data.num_workers=-1"),
        ("data.num_workers=-1 must be 0 or more",), before_hydra=True),
    Row("flip_probability_above_one", lambda c: _train("faces", "data.augment.hflip=2"),
        ("data.augment.hflip=2.0 must be a probability between 0 and 1",), before_hydra=True),
    Row("max_epochs_negative", lambda c: _train("faces", "trainer.max_epochs=-3"),
        ("trainer.max_epochs=-3 must be at least 1",), before_hydra=True),
    Row("max_epochs_zero", lambda c: _train("faces", "trainer.max_epochs=0"),
        ("trainer.max_epochs=0 must be at least 1",), before_hydra=True),
    Row("learning_rate_negative", lambda c: _train("faces", "optim.lr=-1"),
        ("optim.lr=-1.0 must be positive",), before_hydra=True),
    Row("image_size_zero", lambda c: _train("faces", "data.image_size=0"),
        ("data.image_size=0 must be at least 1",), before_hydra=True),
    Row("closed_choice_misspelt", lambda c: _train("faces", "data.split_by=subjekt"),
        ("data.split_by=subjekt is not one of sample, subject",), before_hydra=True),
    Row("null_where_a_value_is_needed", lambda c: _train("faces", "seed=null"),
        ("seed cannot be null (its default is 42)",), before_hydra=True),
    Row("unknown_target", lambda c: _train(c.write_faces(), "optim._target_=torch.optim.Adamm"),
        ("optim._target_ `torch.optim.Adamm` cannot be imported", "did you mean `torch.optim.Adam`")),
    Row("argument_the_target_does_not_take", lambda c: _train(c.write_faces(), "+optim.momentum=0.9"),
        ("optim: `torch.optim.Adam` takes no argument `momentum`", "it takes: params, lr, betas")),
    Row("augment_op_argument_it_does_not_take",
        lambda c: _train(c.write_faces(), "data.augment.ops=[{_target_:fermix.data.augment_ops.RandomCrop,sizes:32}]"),
        ("data.augment.ops[0]: `fermix.data.augment_ops.RandomCrop` takes no argument `sizes`", "it takes: size")),
]  # fmt: skip


def _hashes(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _tree(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_bad_input_is_one_sentence_and_loses_nothing(row, prior, tmp_path, fermix_main):
    case = Case(tmp_path, tmp_path / PRIOR, fermix_main)
    shutil.copytree(prior, case.prior)
    args = row.setup(case)
    before = _hashes(case.prior)
    kept = case.cwd / row.run_dir / "checkpoints" if row.run_dir else None
    kept_before = _hashes(kept) if kept else None
    runs_before = _tree(case.cwd / "runs")

    result = run_fermix(args, case.cwd) if row.fresh else fermix_main(args, case.cwd)

    assert_one_sentence_error(result, *row.fragments)
    assert result.returncode == 1
    assert _hashes(case.prior) == before
    if kept is not None:
        assert kept_before and _hashes(kept) == kept_before
        load_checkpoint(kept / "last.ckpt")
    if row.before_hydra:
        assert _tree(case.cwd / "runs") == runs_before  # no run directory, no .hydra/, no log


def test_unreadable_images_are_skipped_counted_and_named_when_asked(prior, tmp_path, fermix_main):
    """data.bad_images=skip: the run completes without the three unreadable files, which the log and
    summary.json name, and no prediction file mentions them."""
    faces = write_image_folder(tmp_path / "faces", classes=CLASSES, per_class=8, size=32)
    bad = {"sad/broken.jpg": b"this is not a jpeg", "happy/empty.png": b"", "surprise/half.jpg": _half_jpeg()}
    for name, content in bad.items():
        (faces / name).write_bytes(content)
    args = [*_train(faces, "data.bad_images=skip", "hydra.run.dir=runs/skip"),
            "data.val_fraction=0.25", "data.test_fraction=0.25"]  # fmt: skip
    result = fermix_main(args, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]

    run = tmp_path / "runs" / "skip"
    log = (run / "train.log").read_text()
    assert "left out 3 of 27 samples that cannot be read" in log
    assert all(name.split("/")[1] in log for name in bad)
    summary = json.loads((run / "summary.json").read_text())
    skipped = {s["sample_id"]: s["reason"] for s in summary["skipped_images"]}
    assert set(skipped) == set(bad)
    assert "not a decodable image" in skipped["sad/broken.jpg"] and "empty" in skipped["happy/empty.png"]
    assert "truncated" in skipped["surprise/half.jpg"]
    assert sum(summary["split_sizes"].values()) == 24
    for split in ("val", "test"):
        ids = set(pd.read_csv(run / f"predictions_{split}.csv")["sample_id"])
        assert ids and not ids & set(bad)


def test_the_truncated_jpeg_of_this_suite_really_is_undecodable():
    """The row `truncated_jpeg` means what it says: the image decoder itself refuses the bytes
    (OpenCV 5); fermix.data.images.jpeg_truncated catches them with decoders that would not."""
    half = np.frombuffer(_half_jpeg(), np.uint8)
    assert cv2.imdecode(np.frombuffer(_real_jpeg(), np.uint8), cv2.IMREAD_COLOR) is not None
    if int(cv2.__version__.split(".")[0]) >= 5:
        assert cv2.imdecode(half, cv2.IMREAD_COLOR) is None
