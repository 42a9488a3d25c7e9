"""ABAW 2020 submission files (spec §6): read back equal, header, frame order, no trailing newline,
and refusals (frame gaps, duplicates, missing columns, out-of-range values) with nothing written."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fermix.data.datasets.abaw_submission import ABAW_HEADERS, write_abaw_submission
from fermix.errors import FermixError


def _frames(videos: dict[str, range], seed: int = 0) -> pd.DataFrame:
    """One row per (video, frame), rows shuffled so the writer has to sort them."""
    rows = [(v, f) for v, frames in videos.items() for f in frames]
    df = pd.DataFrame(rows, columns=["video", "frame"])
    return df.sample(frac=1.0, random_state=seed).reset_index(drop=True)


def _read(path) -> tuple[str, pd.DataFrame]:
    text = path.read_text()
    return text, pd.read_csv(path)


def test_au_round_trip_header_frame_order_and_no_trailing_newline(tmp_path):
    df = _frames({"video1": range(0, 5), "10-60-1280x720_right": range(1, 4)})
    rng = np.random.default_rng(0)
    au = rng.integers(0, 2, (len(df), 8))
    df[list(ABAW_HEADERS["AU"])] = au
    paths = write_abaw_submission(tmp_path, "AU", df)

    assert paths == [tmp_path / "10-60-1280x720_right.txt", tmp_path / "video1.txt"]
    for path in paths:
        text, back = _read(path)
        assert text.splitlines()[0] == "AU1,AU2,AU4,AU6,AU12,AU15,AU20,AU25"
        assert not text.endswith("\n")
        expected = df[df["video"] == path.stem].sort_values("frame")[list(ABAW_HEADERS["AU"])]
        np.testing.assert_array_equal(back.to_numpy(), expected.to_numpy())
        assert len(text.split("\n")) == 1 + len(expected)  # header + one line per frame
        assert all(set(line) <= set("01,") and len(line) == 15 for line in text.split("\n")[1:])  # 8 bare ints
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths)  # no temporaries left


def test_expr_files_hold_one_int_per_frame(tmp_path):
    df = _frames({"a": range(6)}, seed=1)
    df["expr"] = (df["frame"] * 5 + 1) % 7
    (path,) = write_abaw_submission(tmp_path, "expr", df)  # fermix's lower-case task name works too
    text = path.read_text()
    assert text == "Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise\n1\n6\n4\n2\n0\n5"


def test_va_files_hold_four_decimals_and_read_back_within_rounding(tmp_path):
    df = _frames({"v": range(50)}, seed=2)
    rng = np.random.default_rng(3)
    df["valence"] = rng.uniform(-1, 1, len(df))
    df["arousal"] = rng.uniform(-1, 1, len(df))
    (path,) = write_abaw_submission(tmp_path, "VA_Set", df)
    text, back = _read(path)
    lines = text.split("\n")
    assert lines[0] == "valence,arousal" and not text.endswith("\n")
    assert all(len(x.split(".")[1]) == 4 for line in lines[1:] for x in line.split(","))
    expected = df.sort_values("frame")[["valence", "arousal"]].to_numpy()
    np.testing.assert_allclose(back.to_numpy(), expected, atol=5e-5 + 1e-12)


def test_a_gap_in_a_videos_frames_is_refused_naming_the_video_and_nothing_is_written(tmp_path):
    df = _frames({"good": range(4), "gappy": [0, 1, 3, 4]})
    df["expr"] = 0
    with pytest.raises(FermixError, match="'gappy' has frames missing between frame 0 and frame 4"):
        write_abaw_submission(tmp_path, "EXPR", df)
    assert list(tmp_path.iterdir()) == []


def test_duplicated_frames_missing_columns_and_bad_values_are_refused(tmp_path):
    df = _frames({"a": [0, 1, 1, 2]})
    df["expr"] = 1
    with pytest.raises(FermixError, match="same frame more than once"):
        write_abaw_submission(tmp_path, "EXPR", df)
    ok = _frames({"a": range(3)})
    with pytest.raises(FermixError, match="valence, arousal"):
        write_abaw_submission(tmp_path, "VA", ok)
    with pytest.raises(FermixError, match="AU, EXPR, VA"):
        write_abaw_submission(tmp_path, "DMUE", ok)
    with pytest.raises(FermixError, match=r"0\.\.6"):
        write_abaw_submission(tmp_path, "EXPR", ok.assign(expr=[0, 7, 1]))
    au = ok.assign(**{name: 0.0 for name in ABAW_HEADERS["AU"]})
    au.loc[1, "AU12"] = 0.8  # a probability, not a decision
    with pytest.raises(FermixError, match="whole numbers"):
        write_abaw_submission(tmp_path, "AU", au)
    with pytest.raises(FermixError, match="NaN"):
        write_abaw_submission(tmp_path, "VA", ok.assign(valence=[0.1, np.nan, 0.2], arousal=0.0))
    with pytest.raises(FermixError, match="file name"):
        write_abaw_submission(tmp_path, "EXPR", ok.assign(video="../x", expr=0))
    assert list(tmp_path.iterdir()) == []


def test_rewriting_replaces_a_video_file_whole(tmp_path):
    df = _frames({"a": range(3)}).assign(expr=2)
    (path,) = write_abaw_submission(tmp_path, "EXPR", df)
    write_abaw_submission(tmp_path, "EXPR", _frames({"a": range(2)}).assign(expr=3))
    assert path.read_text() == ",".join(ABAW_HEADERS["EXPR"]) + "\n3\n3"
