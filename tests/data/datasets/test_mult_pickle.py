"""The iemocap / mosei adapters on MulT pickles written by `write_mult_pickle` (causalmer.md §3, §6.1.10)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from fermix.data.datasets.mult_pickle import IEMOCAPDataset, MOSEIDataset
from fermix.data.safe_pickle import restricted_load
from fermix.data.writers.mult_pickle import write_mult_pickle
from fermix.engine.datamodule import FermixDataModule
from fermix.errors import FermixError

SIZES = {"train": 6, "valid": 3, "test": 4}
DIMS = {"text": 7, "audio": 5, "vision": 3}  # not the published 300/74/35: sizes must come from the arrays
ALIGNED = {"text": 4, "audio": 4, "vision": 4}
UNALIGNED = {"text": 4, "audio": 9, "vision": 11}
DATA = {"num_workers": 0, "image_size": 32, "mean": [0.5] * 3, "std": [0.5] * 3}  # image keys: unused, but required
MOSEI_SCORES = np.array([-3.4, -2.6, -0.5, 0.5, 1.5, 2.49, 3.0, 0.0, -1.2, 2.7, -0.2, 1.0, 0.4])


def _one_sentence(message: str) -> None:
    assert "\n" not in message and message.endswith("."), message


def _arrays(task: str, lengths: dict[str, int], seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    """float64 features with -inf holes in audio; IEMOCAP (N, 4, 2) one-hot or MOSEI (N, 1, 1) labels."""
    rng = np.random.default_rng(seed)
    out, start = {}, 0
    for part, n in SIZES.items():
        split = {m: rng.normal(size=(n, lengths[m], DIMS[m])) for m in DIMS}
        split["audio"][rng.random(split["audio"].shape) < 0.2] = -np.inf
        if task == "iemocap":
            present = rng.integers(0, 2, (n, 4))
            present[0] = [1, 0, 1, 1]  # several emotions at once: the four tasks are independent
            split["labels"] = np.stack([1 - present, present], -1).astype(np.float64)
        else:
            split["labels"] = MOSEI_SCORES[start:start + n].reshape(n, 1, 1)
            split["id"] = np.array([[f"vid{start + i}".encode(), b"1.5", b"4.0"] for i in range(n)], dtype=object)
        start += n
        out[part] = split
    return out


def _write(root: Path, task: str = "iemocap", aligned: bool = True, arrays=None) -> dict:
    arrays = arrays if arrays is not None else _arrays(task, ALIGNED if aligned else UNALIGNED)
    prefix = "iemocap" if task == "iemocap" else "mosei_senti"
    write_mult_pickle(arrays, root / f"{prefix}_data{'' if aligned else '_noalign'}.pkl")
    return arrays


# ---------------------------------------------------------------- round trip (spec §6.1.10)


@pytest.mark.parametrize("aligned", [True, False])
def test_iemocap_round_trip_zeroes_minus_inf_and_decodes_one_hot_labels(tmp_path, aligned):
    arrays = _write(tmp_path, "iemocap", aligned)
    stored = restricted_load(tmp_path / f"iemocap_data{'' if aligned else '_noalign'}.pkl")
    assert stored["train"]["audio"].dtype == np.float64 and np.isneginf(stored["train"]["audio"]).any()
    assert stored["valid"]["labels"].shape == (SIZES["valid"], 4, 2)

    ds = IEMOCAPDataset({"root": str(tmp_path), "aligned": aligned})
    rec = ds.records()
    assert len(rec) == len(ds) == sum(SIZES.values())
    for part in SIZES:
        raw = arrays[part]
        rows = rec[rec["part"] == part].sort_values("row")
        for _, row in rows.iterrows():
            s = ds.load(row)
            i = int(row["row"])
            for m in DIMS:
                assert s[m].dtype == np.float32 and s[m].shape == (raw[m].shape[1], DIMS[m])
            assert np.isfinite(s["audio"]).all()
            expected_audio = np.where(np.isneginf(raw["audio"][i]), 0.0, raw["audio"][i]).astype(np.float32)
            np.testing.assert_array_equal(s["audio"], expected_audio)
            np.testing.assert_array_equal(s["text"], raw["text"][i].astype(np.float32))
            np.testing.assert_array_equal(s["vision"], raw["vision"][i].astype(np.float32))
            assert s["expr"].dtype == np.int64 and s["expr"].shape == (4,)
            np.testing.assert_array_equal(s["expr"], raw["labels"][i].argmax(-1))
            # records' expr packs the four bits (fingerprint only): neutral 1, happy 2, sad 4, angry 8
            assert row["expr"] == int((raw["labels"][i].argmax(-1) * [1, 2, 4, 8]).sum())
            assert s["sample_id"] == row["sample_id"] == f"{part}/{i:06d}"
    assert ds.load(rec.iloc[0])["expr"].tolist() == [1, 0, 1, 1]  # order: neutral, happy, sad, angry
    assert rec.groupby("split").size().to_dict() == {"train": 6, "val": 3, "test": 4}  # valid -> val


@pytest.mark.parametrize("aligned", [True, False])
def test_shapes_and_task_are_read_from_the_arrays(tmp_path, aligned):
    _write(tmp_path, "iemocap", aligned)
    ds = IEMOCAPDataset({"root": str(tmp_path), "aligned": aligned})
    lengths = ALIGNED if aligned else UNALIGNED
    assert ds.info_extras == {"task": "iemocap4", "modalities": {m: [lengths[m], DIMS[m]] for m in DIMS}}
    assert ds.label_space.name == "iemocap4" and ds.label_space.classes == ("neutral", "happy", "sad", "angry")
    assert ds.keys == frozenset({"text", "audio", "vision", "expr", "sample_id"})


def test_mosei_gives_the_score_and_its_rounded_7_class_label(tmp_path):
    _write(tmp_path, "mosei")
    ds = MOSEIDataset({"root": str(tmp_path)})
    rec = ds.records()
    scores = np.concatenate([ds.load(r)["score"][None] for _, r in rec.iterrows()])
    assert scores.dtype == np.float32
    np.testing.assert_allclose(scores, MOSEI_SCORES.astype(np.float32))
    classes = [ds.load(r)["expr"] for _, r in rec.iterrows()]
    # round(clip(y, -3, 3)) + 3; halves round to even as numpy (and MulT's eval) do: -0.5 -> 0, 0.5 -> 0, 1.5 -> 2
    assert classes == [0, 0, 3, 3, 5, 5, 6, 3, 2, 6, 3, 4, 3]
    assert rec["expr"].tolist() == classes and all(isinstance(c, int) for c in classes)
    assert rec["native_id"].iloc[0] == "vid0/1.5/4.0"  # MulT stores the id triple as bytes
    assert ds.keys == frozenset({"text", "audio", "vision", "expr", "score", "sample_id"})
    assert ds.info_extras["task"] == "mosei7" and ds.label_space.classes == ("-3", "-2", "-1", "0", "1", "2", "3")


def test_unaligned_mosei_reads_the_noalign_file(tmp_path):
    _write(tmp_path, "mosei", aligned=False)
    ds = MOSEIDataset({"root": str(tmp_path), "aligned": "false"})
    assert ds.info_extras["modalities"]["vision"] == [UNALIGNED["vision"], DIMS["vision"]]
    assert ds.path.name == "mosei_senti_data_noalign.pkl"


def test_datamodule_batches_sequences_and_per_emotion_labels(tmp_path):
    _write(tmp_path, "iemocap", aligned=False)
    dm = FermixDataModule({"name": "iemocap", "root": str(tmp_path), "aligned": False}, {**DATA, "batch_size": 4})
    info = dm.build()
    assert info.extras["modalities"]["audio"] == [UNALIGNED["audio"], DIMS["audio"]]
    assert dm.split_sizes() == {"train": 6, "val": 3, "test": 4}  # the file's splits, nothing carved
    batch = next(iter(dm.loader("test")))
    assert batch["text"].shape == (4, UNALIGNED["text"], DIMS["text"]) and batch["text"].dtype == torch.float32
    assert batch["vision"].shape == (4, UNALIGNED["vision"], DIMS["vision"])
    assert batch["expr"].shape == (4, 4) and batch["expr"].dtype == torch.long
    assert len(dm.fingerprints()["train"]) == 16


def test_mosei_batches_carry_a_float_score(tmp_path):
    _write(tmp_path, "mosei")
    dm = FermixDataModule({"name": "mosei", "root": str(tmp_path)}, {**DATA, "batch_size": 3})
    dm.build()
    batch = next(iter(dm.loader("val")))
    assert batch["score"].dtype == torch.float32 and batch["score"].shape == (3,)
    assert batch["expr"].dtype == torch.long and batch["expr"].tolist() == [6, 3, 2]  # scores 3.0, 0.0, -1.2


# ---------------------------------------------------------------- errors: one sentence each


def test_a_missing_root_or_file_names_the_path(tmp_path):
    with pytest.raises(FermixError) as e:
        IEMOCAPDataset({"root": str(tmp_path / "nowhere")})
    _one_sentence(str(e.value))
    with pytest.raises(FermixError, match=r"iemocap_data_noalign\.pkl") as e:
        IEMOCAPDataset({"root": str(tmp_path), "aligned": False})
    assert str(tmp_path) in str(e.value)
    _one_sentence(str(e.value))


def test_a_mosei_file_is_refused_as_iemocap(tmp_path):
    arrays = _arrays("mosei", ALIGNED)
    write_mult_pickle(arrays, tmp_path / "iemocap_data.pkl")
    with pytest.raises(FermixError, match="expects iemocap4") as e:
        IEMOCAPDataset({"root": str(tmp_path)})
    _one_sentence(str(e.value))


def _broken(kind: str) -> dict:
    arrays = _arrays("iemocap", ALIGNED)
    if kind == "no_split":
        del arrays["valid"]
    elif kind == "no_modality":
        del arrays["test"]["vision"]
    elif kind == "flat_features":
        arrays["train"]["text"] = arrays["train"]["text"][:, 0]
    elif kind == "count_mismatch":
        arrays["train"]["audio"] = arrays["train"]["audio"][:-1]
    elif kind == "label_shape":
        arrays["train"]["labels"] = np.zeros((SIZES["train"], 3, 2))
    elif kind == "split_shapes":
        arrays["test"]["vision"] = np.zeros((SIZES["test"], 4, DIMS["vision"] + 1))
    elif kind == "not_a_dict":
        return [1, 2, 3]  # type: ignore[return-value]
    return arrays


@pytest.mark.parametrize(
    ("kind", "words"),
    [
        ("no_split", "no valid split"),
        ("no_modality", "no vision array"),
        ("flat_features", "features must be"),
        ("count_mismatch", "different numbers of samples"),
        ("label_shape", "neither IEMOCAP"),
        ("split_shapes", "every split must share"),
        ("not_a_dict", "not MulT's dict"),
    ],
)
def test_a_wrong_layout_is_one_sentence(tmp_path, kind, words):
    # written with plain pickle: the writer itself refuses most of these
    (tmp_path / "iemocap_data.pkl").write_bytes(pickle.dumps(_broken(kind), protocol=4))
    with pytest.raises(FermixError, match=words) as e:
        IEMOCAPDataset({"root": str(tmp_path)})
    _one_sentence(str(e.value))
    assert str(tmp_path / "iemocap_data.pkl") in str(e.value)


class _Foreign:
    pass


def test_a_pickle_naming_a_foreign_class_is_refused(tmp_path):
    arrays = _arrays("iemocap", ALIGNED)
    arrays["train"]["extra"] = _Foreign()
    (tmp_path / "iemocap_data.pkl").write_bytes(pickle.dumps(arrays, protocol=4))
    with pytest.raises(FermixError, match="refuses to load") as e:
        IEMOCAPDataset({"root": str(tmp_path)})
    _one_sentence(str(e.value))


def test_a_bad_aligned_flag_is_one_sentence(tmp_path):
    _write(tmp_path)
    with pytest.raises(FermixError, match="aligned") as e:
        IEMOCAPDataset({"root": str(tmp_path), "aligned": "maybe"})
    _one_sentence(str(e.value))


@pytest.mark.parametrize("drop", ["valid", "labels"])
def test_the_writer_refuses_an_incomplete_layout_in_one_sentence(tmp_path, drop):
    arrays = _arrays("iemocap", ALIGNED)
    if drop == "valid":
        del arrays["valid"]
    else:
        del arrays["train"]["labels"]
    with pytest.raises(FermixError) as e:
        write_mult_pickle(arrays, tmp_path / "x.pkl")
    _one_sentence(str(e.value))
    assert not (tmp_path / "x.pkl").exists()


def test_the_writer_accepts_val_for_valid_and_stores_mosei_labels_as_n_1_1(tmp_path):
    arrays = _arrays("mosei", ALIGNED)
    arrays["val"] = arrays.pop("valid")
    arrays["val"]["labels"] = arrays["val"]["labels"].reshape(-1)
    write_mult_pickle(arrays, tmp_path / "m.pkl")
    stored = restricted_load(tmp_path / "m.pkl")
    assert set(stored) == {"train", "valid", "test"}
    assert stored["valid"]["labels"].shape == (SIZES["valid"], 1, 1) and stored["valid"]["labels"].dtype == np.float64
    assert stored["test"]["id"].shape == (SIZES["test"], 3)
