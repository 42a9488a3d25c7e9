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
