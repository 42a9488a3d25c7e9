from __future__ import annotations

import collections
import io
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fermix.data.safe_pickle import restricted_load
from fermix.errors import FermixError

PROTOCOLS = (2, 3, 4, 5)


def _one_sentence(message: str) -> None:
    assert "\n" not in message and message.endswith("."), message


def _dump(tmp_path: Path, obj: object, protocol: int = pickle.DEFAULT_PROTOCOL, name: str = "data.pkl") -> Path:
    path = tmp_path / name
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    return path


# ---------------------------------------------------------------- what loads


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_builtin_containers_and_scalars_round_trip(tmp_path, protocol):
    obj = {
        "list": [1, -2, 2.5, "text", b"raw", b"", None, True, False, 3 + 4j],
        "tuple": (1, ("nested", 2)),
        "set": {1, 2, 3},
        "frozenset": frozenset({"a", "b"}),
        "ordered": collections.OrderedDict([("z", 1), ("a", 2)]),
        "big": 2**80,
    }
    loaded = restricted_load(_dump(tmp_path, obj, protocol))
    assert loaded == obj
    assert type(loaded["ordered"]) is collections.OrderedDict and list(loaded["ordered"]) == ["z", "a"]
    assert type(loaded["frozenset"]) is frozenset and type(loaded["set"]) is set


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_numpy_arrays_dtypes_and_scalars_round_trip(tmp_path, protocol):
    structured = np.array([(1, 2.5, b"ab"), (3, -1.0, b"c")], dtype=[("i", "<i4"), ("f", "<f8"), ("s", "S2")])
    obj = {
        "float": np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4),
        "int": np.arange(10, dtype=np.int64),
        "uint8": np.arange(24, dtype=np.uint8).reshape(2, 3, 4),
        "fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
        "strided": np.arange(20)[::3],
        "unicode": np.array(["neutral", "happy"]),
        "structured": structured,
        "empty": np.zeros((0, 5), dtype=np.float64),
        "dtype": np.dtype([("x", "<f4"), ("y", "<f4")]),
        "scalars": [np.float32(1.5), np.int64(-7), np.bool_(True)],
    }
    loaded = restricted_load(_dump(tmp_path, obj, protocol))
    for key in ("float", "int", "uint8", "fortran", "strided", "unicode", "structured", "empty"):
        assert loaded[key].dtype == obj[key].dtype, key
        np.testing.assert_array_equal(loaded[key], obj[key])
    assert loaded["fortran"].flags["F_CONTIGUOUS"]
    assert loaded["dtype"] == obj["dtype"]
    assert [type(s) for s in loaded["scalars"]] == [np.float32, np.int64, np.bool_]
    assert loaded["scalars"] == obj["scalars"]


def test_mult_style_multimodal_pickle_loads(tmp_path):
    """The layout of MulT's `*_data.pkl` files, which the causalmer adapter reads."""
    rng = np.random.default_rng(0)
    split = {
        "vision": rng.normal(size=(4, 20, 35)).astype(np.float32),
        "audio": rng.normal(size=(4, 20, 74)).astype(np.float32),
        "text": rng.normal(size=(4, 20, 300)).astype(np.float32),
        "labels": rng.integers(0, 2, size=(4, 4, 2)).astype(np.float32),
        "id": np.array([["vid1", "0"], ["vid1", "1"], ["vid2", "0"], ["vid3", "2"]], dtype=object),
    }
    data = {"train": split, "valid": dict(split), "test": dict(split)}
    loaded = restricted_load(_dump(tmp_path, data, protocol=4, name="iemocap_data.pkl"))
    assert set(loaded) == {"train", "valid", "test"}
    assert loaded["train"]["vision"].shape == (4, 20, 35) and loaded["train"]["vision"].dtype == np.float32
    np.testing.assert_array_equal(loaded["test"]["text"], split["text"])
    assert loaded["valid"]["id"].tolist() == split["id"].tolist()


def test_numpy_1_module_names_load_under_any_numpy(tmp_path):
    """Files written under numpy 1.x name `numpy.core.multiarray`; numpy 2 writes `numpy._core`."""
    data = pickle.dumps({"x": np.arange(5, dtype=np.int16), "s": np.float64(2.0)}, protocol=2)
    if b"numpy._core.multiarray" in data:
        data = data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert b"numpy.core.multiarray" in data
    loaded = restricted_load(io.BytesIO(data))
    np.testing.assert_array_equal(loaded["x"], np.arange(5, dtype=np.int16))
    assert loaded["s"] == 2.0


def test_an_open_binary_file_is_accepted(tmp_path):
    path = _dump(tmp_path, {"k": [1, 2]})
    with open(path, "rb") as f:
        assert restricted_load(f) == {"k": [1, 2]}


# ---------------------------------------------------------------- what is refused


class _Reduce:
    """Pickles as a call of `func(*args)`: what a malicious pickle does."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _touch_code(marker: Path) -> str:
    return f"open({str(marker)!r}, 'w').close()"


def _malicious_payloads(marker: Path) -> dict[str, bytes]:
    touch = f"touch {marker}"
    # `os.system` pickles as `posix.system` on POSIX; write the `os.system` spelling by hand (protocol 0).
    by_hand = f"cos\nsystem\n(V{touch}\ntR.".encode()
    return {
        "os.system": by_hand,
        "posix.system": f"cposix\nsystem\n(V{touch}\ntR.".encode(),
        "builtins.eval": pickle.dumps(_Reduce(eval, _touch_code(marker))),
        "builtins.exec": pickle.dumps(_Reduce(exec, _touch_code(marker))),
        "subprocess.call": pickle.dumps(_Reduce(subprocess.call, ["touch", str(marker)])),
        "subprocess.Popen": pickle.dumps(_Reduce(subprocess.Popen, ["touch", str(marker)])),
        "numpy.load": pickle.dumps(_Reduce(np.load, str(marker))),
        "builtins.getattr": pickle.dumps(_Reduce(getattr, "text", "upper")),
        # Hidden inside an otherwise legitimate label dict, as in a tampered emotion_labels.pkl.
        "nested": pickle.dumps({"ckplus_S005_001": "Anger", "x": [_Reduce(eval, _touch_code(marker))]}, protocol=2),
    }


@pytest.mark.parametrize(
    ("case", "named"),
    [
        ("os.system", "os.system"),
        ("posix.system", "posix.system"),
        ("builtins.eval", "builtins.eval"),
        ("builtins.exec", "builtins.exec"),
        ("subprocess.call", "subprocess.call"),
        ("subprocess.Popen", "subprocess.Popen"),
        ("numpy.load", "numpy.load"),
        ("builtins.getattr", "builtins.getattr"),
        ("nested", "eval"),
    ],
)
def test_a_malicious_pickle_is_refused_and_never_runs(tmp_path, case, named):
    marker = tmp_path / "pwned"
    path = tmp_path / "emotion_labels.pkl"
    path.write_bytes(_malicious_payloads(marker)[case])
    with pytest.raises(FermixError) as err:
        restricted_load(path)
    message = str(err.value)
    _one_sentence(message)
    assert str(path) in message and named in message and "refuses" in message
    assert not marker.exists()


def test_a_refused_module_is_never_imported(tmp_path, monkeypatch):
    marker = tmp_path / "imported"
    (tmp_path / "fermix_probe_module.py").write_text(f"open({str(marker)!r}, 'w').close()\ndef f(): pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(FermixError, match=r"fermix_probe_module\.f"):
        restricted_load(io.BytesIO(b"cfermix_probe_module\nf\n(tR."))
    assert not marker.exists() and "fermix_probe_module" not in sys.modules


def test_codecs_encode_admits_only_the_latin1_bytes_pickle_writes():
    rot13 = b"c_codecs\nencode\n(Vabc\nVrot13\ntR."
    with pytest.raises(FermixError, match="not a valid pickle"):
        restricted_load(io.BytesIO(rot13))


# ---------------------------------------------------------------- broken files


def test_a_truncated_pickle_is_one_sentence(tmp_path):
    data = pickle.dumps({"a": np.arange(100), "b": list(range(50))}, protocol=4)
    path = tmp_path / "cut.pkl"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(FermixError) as err:
        restricted_load(path)
    _one_sentence(str(err.value))
    assert str(path) in str(err.value) and "truncated" in str(err.value)


@pytest.mark.parametrize("content", [b"", b"label,path\nAnger,x.png\n"])
def test_an_empty_or_non_pickle_file_is_one_sentence(tmp_path, content):
    path = tmp_path / "labels.pkl"
    path.write_bytes(content)
    with pytest.raises(FermixError, match="not a valid pickle") as err:
        restricted_load(path)
    _one_sentence(str(err.value))


def test_a_missing_file_is_one_sentence(tmp_path):
    with pytest.raises(FermixError, match=r"cannot open .*nothing\.pkl") as err:
        restricted_load(tmp_path / "nothing.pkl")
    _one_sentence(str(err.value))
