"""`fermix preprocess` killed mid-run: nothing half-written is visible, and the re-run equals an uninterrupted run.

Every image, record and report is written atomically (a hidden temporary, then a rename), and the
record after its image. A SIGKILL can leave only temporaries, which readers skip and the next run
into the folder removes; one run at a time holds the folder (`.records/lock`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from fermix.data.datasets.imagefolder import ImageFolderDataset
from fermix.errors import FermixError
from fermix.preprocess.pipeline import preprocess
from fermix.preprocess.records import exclusive_output
from fermix.preprocess.settings import settings_from_config
from fermix.utils import io as fio
from tests.preprocess.photos import astronaut, rotated, save, write_photo_folder

PHOTOS = 12


def _files(out: Path) -> dict[str, Path]:
    """Every file a run wrote (relative posix path -> path), Hydra's run logs aside."""
    return {
        p.relative_to(out).as_posix(): p
        for p in sorted(out.rglob("*"))
        if p.is_file() and ".hydra_runs" not in p.relative_to(out).parts
    }


def _children(pid: int) -> list[int]:
    """Pids whose parent is `pid` (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _finished(folder: Path) -> int:
    return sum(1 for p in folder.glob("*.json") if not fio.is_temp_name(p.name))


def _report_without_run_counts(out: Path) -> dict:
    report = json.loads((out / "preprocess.json").read_text())
    del report["counts"]["processed"], report["counts"]["reused"]  # how this run got there, by design
    return report


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="needs Linux /proc")
def test_sigkill_mid_run_leaves_only_complete_files_and_the_rerun_equals_an_uninterrupted_run(tmp_path, fermix_main):
    photo = astronaut()[:300, 80:380]  # the face and some margin: quicker to search than the full photo
    for i in range(PHOTOS):
        save(tmp_path / "raw" / "happy" / f"a{i:02d}.png", rotated(photo, i - 6))
    base = ["preprocess", "dataset.root=raw", "progress=none"]

    # The whole job is killed at once (as Slurm pre-emption or a lost node does): parent and workers.
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "fermix", *base, "preprocess.out=killed", "preprocess.num_workers=2"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    records = tmp_path / "killed" / ".records" / "happy"
    deadline = time.monotonic() + 120
    # Count finished records only: a temporary `.a00.json.tmp-<hex>.json` also ends in .json.
    while proc.poll() is None and time.monotonic() < deadline and _finished(records) < 2:
        time.sleep(0.01)
    workers = _children(proc.pid)
    os.killpg(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    deadline = time.monotonic() + 30
    while any(_alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert workers and not any(_alive(w) for w in workers)

    straight = fermix_main([*base, "preprocess.out=straight"], tmp_path)
    assert straight.returncode == 0, straight.stderr
    want = _files(tmp_path / "straight")
    assert not any(fio.is_temp_name(p.name) for p in want.values())

    # What the kill left: complete files only, plus temporaries that readers skip.
    killed = tmp_path / "killed"
    left = _files(killed)
    done = {k for k in left if k.startswith(".records/happy/") and not fio.is_temp_name(Path(k).name)}
    assert 2 <= len(done) < PHOTOS and not (killed / "manifest.csv").exists()
    temps = [k for k, p in left.items() if fio.is_temp_name(p.name)]
    for rel, path in left.items():
        if rel in temps:
            continue
        assert path.read_bytes() == want[rel].read_bytes(), f"{rel} differs from the uninterrupted run's"
        if rel.startswith("images/"):
            assert cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_UNCHANGED) is not None, rel
    for rel in done:  # a record always names a finished image (an image may lack its record: in flight)
        assert json.loads(left[rel].read_text())["image"] in left

    rerun = fermix_main([*base, "preprocess.out=killed"], tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    got = _files(killed)
    assert sorted(got) == sorted(want)  # the leftovers are gone, nothing is missing
    for rel in got:
        if rel != "preprocess.json":
            assert got[rel].read_bytes() == want[rel].read_bytes(), rel
    assert _report_without_run_counts(killed) == _report_without_run_counts(tmp_path / "straight")
    counts = json.loads((killed / "preprocess.json").read_text())["counts"]
    assert counts["reused"] >= len(done) and counts["processed"] + counts["reused"] == PHOTOS


def test_rerun_removes_the_temporaries_a_killed_run_left_and_redoes_the_unrecorded_image(tmp_path):
    items = ImageFolderDataset.raw_items({"root": str(write_photo_folder(tmp_path / "raw"))})
    settings = settings_from_config({})
    out = tmp_path / "out"
    preprocess(items, settings, out, progress="none")
    want = {rel: p.read_bytes() for rel, p in _files(out).items()}

    # A kill in the middle of "happy/astronaut": its image half written, its record never written;
    # and one in the middle of rewriting the manifest.
    image = out / "images" / "happy" / "astronaut.png"
    (out / ".records" / "happy" / "astronaut.json").unlink()
    image.unlink()
    leftovers = [fio._create_temp(image), fio._create_temp(out / "manifest.csv")]
    for tmp in leftovers:
        tmp.write_bytes(b"half")
    listed = [Path(i.path).name for i in ImageFolderDataset.raw_items({"root": str(out / "images")})]
    assert listed == ["astronaut_rot20.png"]  # a reader of the folder skips the temporary

    report = preprocess(items, settings, out, progress="none")
    assert (report["counts"]["processed"], report["counts"]["reused"]) == (1, 2)
    assert not any(p.exists() for p in leftovers)
    assert {rel: p.read_bytes() for rel, p in _files(out).items() if rel != "preprocess.json"} == {
        rel: data for rel, data in want.items() if rel != "preprocess.json"
    }


def test_a_second_run_into_an_output_folder_in_use_is_one_sentence_and_leaves_it_alone(tmp_path):
    items = ImageFolderDataset.raw_items({"root": str(write_photo_folder(tmp_path / "raw"))})
    out = tmp_path / "out"
    with exclusive_output(out):  # another run holds the folder
        (out / "images" / "happy").mkdir(parents=True)
        leftover = fio._create_temp(out / "images" / "happy" / "astronaut.png")  # its write in flight
        with pytest.raises(FermixError, match=r"^another fermix preprocess is writing into .*out; wait for it"):
            preprocess(items, settings_from_config({}), out, progress="none")
        assert leftover.exists()
    leftover.unlink()
    report = preprocess(items, settings_from_config({}), out, progress="none")  # released: runs
    assert report["counts"]["aligned"] == 2
