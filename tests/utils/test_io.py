import json
import os
import sys

import numpy as np
import pytest

from fermix.utils import io as fio
from fermix.utils.io import atomic_path, atomic_write_bytes, atomic_write_json, atomic_write_text


def test_writes_content_and_creates_parent_directories(tmp_path):
    target = tmp_path / "a" / "b" / "note.txt"
    atomic_write_text(target, "héllo\n")
    assert target.read_text(encoding="utf-8") == "héllo\n"
    atomic_write_bytes(target, b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"


def test_failure_mid_write_keeps_previous_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "summary.json"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="disk full"), atomic_path(target) as tmp:
        tmp.write_text("half of the new cont")
        raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]


def test_failure_at_rename_keeps_previous_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "best.ckpt"
    target.write_bytes(b"old")

    def broken_replace(src, dst):
        raise OSError("rename failed")

    monkeypatch.setattr(fio.os, "replace", broken_replace)
    with pytest.raises(OSError, match="rename failed"):
        atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["best.ckpt"]


def test_temporary_is_in_target_directory_with_same_suffix(tmp_path):
    target = tmp_path / "sub" / "confusion.png"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent
        assert tmp.name.endswith(".png")
        assert tmp != target
        tmp.write_bytes(b"png")
    assert target.read_bytes() == b"png"
    assert not tmp.exists()


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_new_file_gets_umask_permissions_not_private_tempfile_mode(tmp_path):
    target = tmp_path / "out.txt"
    atomic_write_text(target, "x")
    umask = os.umask(0o022)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask


def test_json_turns_non_finite_floats_into_null_and_keeps_key_order(tmp_path):
    target = tmp_path / "summary.json"
    obj = {"z": float("nan"), "a": [1.5, float("inf"), -float("inf")], "m": {"k": np.float32(0.25)}}
    atomic_write_json(target, obj)
    text = target.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"z": None, "a": [1.5, None, None], "m": {"k": 0.25}}
    assert list(json.loads(text)) == ["z", "a", "m"]
    assert text.startswith('{\n  "z"')  # indent 2


def _leftover_of(target):
    """What a writer of `target` killed mid-write leaves: atomic_path's temporary, half written."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = fio._create_temp(target)
    tmp.write_bytes(b"half")
    return tmp


def test_temporary_names_follow_the_pattern_that_marks_them_as_leftovers(tmp_path):
    for name in ("last.ckpt", "img.001.png", "summary.json", "noext"):
        with atomic_path(tmp_path / name) as tmp:
            assert fio.is_temp_name(tmp.name), tmp.name
            assert tmp.name.startswith(f".{name}.tmp-")
    for name in ("last.ckpt", ".last.ckpt", ".last.ckpt.tmp-", ".last.ckpt.tmp-0123abcd.json",
                 ".last.ckpt.tmp-0123abcz.ckpt", ".last.ckpt.tmp-0123abc.ckpt", "x.last.ckpt.tmp-0123abcd.ckpt"):
        assert not fio.is_temp_name(name), name


def test_remove_stale_temps_removes_only_leftovers_and_keeps_targets_and_other_files(tmp_path):
    ckpts = tmp_path / "checkpoints"
    atomic_write_bytes(ckpts / "last.ckpt", b"good")
    leftovers = [_leftover_of(ckpts / "last.ckpt"), _leftover_of(ckpts / "sub" / "best.ckpt")]
    (ckpts / "notes.tmp").write_text("mine")
    (ckpts / ".hidden").write_text("mine")
    (ckpts / ".last.ckpt.tmp-backup").write_text("a user's file that merely looks similar")
    assert all(p.exists() for p in leftovers)

    assert fio.remove_stale_temps(ckpts) == [leftovers[0]]  # not recursive: sub/ untouched
    assert leftovers[1].exists()
    assert fio.remove_stale_temps(ckpts, recursive=True) == [leftovers[1]]
    assert sorted(p.name for p in ckpts.rglob("*") if p.is_file()) == [
        ".hidden", ".last.ckpt.tmp-backup", "last.ckpt", "notes.tmp"
    ]
    assert (ckpts / "last.ckpt").read_bytes() == b"good"
    assert fio.remove_stale_temps(tmp_path / "absent") == []
