"""`synthetic_mm`: shapes, the two genuine-signal regimes, the shortcut and its test variants (causalmer.md §6.2)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression

from fermix.data.datasets.mult_pickle import IEMOCAPDataset, MOSEIDataset
from fermix.data.synthetic_mm import SyntheticMMDataset
from fermix.errors import FermixError

SMALL = {"train": 60, "val": 20, "test": 30}
PROBE = {"train": 800, "val": 20, "test": 600}  # enough for linear probes; chance is 1/4
K = 4


def _one_sentence(message: str) -> None:
    assert "\n" not in message and message.endswith("."), message


def _mean(ds: SyntheticMMDataset, part: str, modality: str) -> np.ndarray:
    """Time-averaged features, the input of every probe below."""
    return ds.splits[part].features[modality].mean(1)


def _probe(ds: SyntheticMMDataset, modalities: tuple[str, ...]) -> float:
    """Test accuracy of a logistic regression on the time-averaged features of `modalities`."""
    x_train = np.hstack([_mean(ds, "train", m) for m in modalities])
    x_test = np.hstack([_mean(ds, "test", m) for m in modalities])
    clf = LogisticRegression(max_iter=2000).fit(x_train, ds.codes["train"]["y"])
    return float(clf.score(x_test, ds.codes["test"]["y"]))


def _pair_probe(ds: SyntheticMMDataset, a: str, b: str) -> float:
    """Logistic regression on the pairwise products of a's and b's leading K principal components.

    The label (u_a + u_b) mod K is not a sum of a function of a and a function of b, so no linear probe
    on [a, b] can beat chance on it; products of the two modalities' features can.
    """
    pcs = {m: PCA(K, random_state=0).fit(_mean(ds, "train", m)) for m in (a, b)}

    def features(part: str) -> np.ndarray:
        u, v = (pcs[m].transform(_mean(ds, part, m)) for m in (a, b))
        return np.einsum("ni,nj->nij", u, v).reshape(len(u), -1)

    clf = LogisticRegression(max_iter=3000).fit(features("train"), ds.codes["train"]["y"])
    return float(clf.score(features("test"), ds.codes["test"]["y"]))


@pytest.fixture(scope="module")
def interaction() -> SyntheticMMDataset:
    # the default 2000 training samples: the product probe below needs more than the linear ones
    return SyntheticMMDataset({**PROBE, "train": 2000, "regime": "interaction", "seed": 3})


@pytest.fixture(scope="module")
def additive() -> SyntheticMMDataset:
    return SyntheticMMDataset({**PROBE, "regime": "additive", "seed": 3})


# ---------------------------------------------------------------- shapes


def test_default_samples_are_iemocap_shaped_with_one_emotion_present():
    ds = SyntheticMMDataset(SMALL)
    shapes = {"text": [20, 300], "audio": [20, 74], "vision": [20, 35]}
    assert ds.info_extras == {"task": "iemocap4", "modalities": shapes}
    assert ds.label_space.name == "iemocap4" and ds.keys == frozenset({"text", "audio", "vision", "expr", "sample_id"})
    rec = ds.records()
    assert rec.groupby("split").size().to_dict() == {"train": 60, "val": 20, "test": 30}
    assert ds.arrays["train"]["labels"].shape == (60, 4, 2)
    for _, row in rec.iterrows():
        s = ds.load(row)
        assert s["text"].shape == (20, 300) and s["audio"].shape == (20, 74) and s["vision"].shape == (20, 35)
        assert s["text"].dtype == np.float32
        assert s["expr"].dtype == np.int64 and s["expr"].sum() == 1 and s["expr"][row["y"]] == 1
        assert row["expr"] == 2 ** row["y"]  # the packed code of a single emotion


def test_mosei_shape_has_7_classes_and_a_score_that_rounds_to_them():
    ds = SyntheticMMDataset({**SMALL, "shape": "mosei"})
    assert ds.info_extras["task"] == "mosei7" and ds.info_extras["modalities"]["text"] == [50, 300]
    assert "score" in ds.keys and ds.label_space.num_classes == 7
    rec = ds.records()
    assert set(rec["y"]) <= set(range(7)) and len(set(rec["y"])) > 4
    for _, row in rec.iterrows():
        s = ds.load(row)
        assert -3.0 <= s["score"] <= 3.0 and round(float(s["score"])) + 3 == s["expr"] == row["y"]
    assert ds.arrays["test"]["id"].shape == (30, 3)


def test_unaligned_lengths_differ_per_modality():
    ds = SyntheticMMDataset({**SMALL, "lengths": [20, 40, 50]})
    assert ds.info_extras["modalities"] == {"text": [20, 300], "audio": [40, 74], "vision": [50, 35]}


# ---------------------------------------------------------------- regimes


def test_interaction_each_genuine_modality_alone_is_at_chance_both_jointly_well_above(interaction):
    assert _probe(interaction, ("text",)) < 0.25 + 0.07
    assert _probe(interaction, ("audio",)) < 0.25 + 0.07
    assert _probe(interaction, ("text", "audio")) < 0.25 + 0.07  # additive in t and a: cannot express the mod-sum
    assert _pair_probe(interaction, "text", "audio") > 0.40
    codes = interaction.codes["train"]
    np.testing.assert_array_equal((codes["code_text"] + codes["code_audio"]) % K, codes["y"])


def test_additive_each_genuine_modality_alone_is_informative(additive):
    for m in ("text", "audio"):
        assert _probe(additive, (m,)) > 0.5
    # at the frozen separation each alone is already near 1.0, so together they can only match it
    assert _probe(additive, ("text", "audio")) >= max(_probe(additive, ("text",)), _probe(additive, ("audio",)))


def test_the_shortcut_is_decodable_alone_in_both_regimes(interaction, additive):
    for ds in (interaction, additive):
        assert _probe(ds, ("vision",)) > 0.75  # ≈ rho + (1 - rho) / K = 0.85


# ---------------------------------------------------------------- shortcut and test variants


@pytest.mark.parametrize("rho", [0.8, 0.5])
def test_shortcut_agrees_with_the_label_at_rate_rho_in_train_and_val(rho):
    ds = SyntheticMMDataset({"train": 4000, "val": 2000, "test": 10, "rho": rho, "seed": 1})
    for part in ("train", "valid"):
        c = ds.codes[part]
        assert abs(c["shortcut_clean"].mean() - rho) < 0.03
        assert abs((c["code_vision"] == c["y"]).mean() - (rho + (1 - rho) / K)) < 0.03
        np.testing.assert_array_equal(c["code_vision"][c["shortcut_clean"]], c["y"][c["shortcut_clean"]])


def _variant(name: str, **kw) -> SyntheticMMDataset:
    return SyntheticMMDataset({**PROBE, "train": 400, "test": 400, "seed": 5, "test_variant": name, **kw})


@pytest.fixture(scope="module")
def variants() -> dict[str, SyntheticMMDataset]:
    return {v: _variant(v) for v in ("iid", "random", "reversed", "zeroed")}


def test_test_variants_set_the_shortcut_code(variants):
    y = variants["iid"].codes["test"]["y"]
    agree = {v: float((ds.codes["test"]["code_vision"] == y).mean()) for v, ds in variants.items()}
    assert abs(agree["iid"] - 0.85) < 0.06 and abs(agree["random"] - 0.25) < 0.06
    np.testing.assert_array_equal(variants["reversed"].codes["test"]["code_vision"], (y + 1) % K)
    assert (variants["zeroed"].codes["test"]["code_vision"] == -1).all()
    assert not variants["zeroed"].splits["test"].features["vision"].any()
    assert variants["zeroed"].splits["valid"].features["vision"].any()  # val follows training


def test_a_vision_classifier_fits_train_and_fails_as_the_variant_says(variants):
    clf = LogisticRegression(max_iter=2000)
    train = variants["iid"]
    clf.fit(_mean(train, "train", "vision"), train.codes["train"]["y"])
    acc = {v: clf.score(_mean(ds, "test", "vision"), ds.codes["test"]["y"]) for v, ds in variants.items()}
    assert acc["iid"] > 0.75 and acc["random"] < 0.35 and acc["reversed"] < 0.1 and acc["zeroed"] < 0.5


def test_variants_change_only_the_shortcut_modality(variants):
    base = variants["iid"]
    for name, ds in variants.items():
        for part in ("train", "valid", "test"):
            for m in ("text", "audio", "labels"):
                np.testing.assert_array_equal(ds.arrays[part][m], base.arrays[part][m])
        np.testing.assert_array_equal(ds.arrays["train"]["vision"], base.arrays["train"]["vision"])
        if name != "iid":
            assert not np.array_equal(ds.arrays["test"]["vision"], base.arrays["test"]["vision"])


def test_val_variant_sets_the_validation_shortcut_and_leaves_train_and_test_alone():
    free, base = _variant("iid", val_variant="random", val=400), _variant("iid", val=400)
    y = free.codes["valid"]["y"]
    assert abs(float((free.codes["valid"]["code_vision"] == y).mean()) - 0.25) < 0.08
    for part in ("train", "test"):
        np.testing.assert_array_equal(free.arrays[part]["vision"], base.arrays[part]["vision"])
    for m in ("text", "audio", "labels"):
        np.testing.assert_array_equal(free.arrays["valid"][m], base.arrays["valid"][m])


def test_val_twin_appends_the_validation_samples_with_the_other_shortcut():
    ds = SyntheticMMDataset({**SMALL, "val_twin": "random", "seed": 4})
    plain, free = (
        SyntheticMMDataset({**SMALL, "seed": 4}),
        SyntheticMMDataset({**SMALL, "seed": 4, "val_variant": "random"}),
    )
    n = SMALL["val"]
    for key in ("text", "audio", "vision", "labels"):
        np.testing.assert_array_equal(ds.arrays["valid"][key][:n], plain.arrays["valid"][key])
        np.testing.assert_array_equal(ds.arrays["valid"][key][n:], free.arrays["valid"][key])
        np.testing.assert_array_equal(ds.arrays["train"][key], plain.arrays["train"][key])
    rec = ds.records()
    assert "twin" in ds.keys and rec.groupby("split")["twin"].sum().to_dict() == {"train": 0, "val": n, "test": 0}
    val = rec[rec["split"] == "val"]
    assert [ds.load(row)["twin"] for _, row in val.iloc[[0, -1]].iterrows()] == [0, 1]
    assert "twin" not in plain.keys and "twin" not in plain.load(plain.records().iloc[0])


def test_remove_zeroes_a_modality_in_every_split_and_nothing_else():
    ds, base = SyntheticMMDataset({**SMALL, "remove": "v"}), SyntheticMMDataset(SMALL)
    assert ds.config.remove == ("vision",) and SyntheticMMDataset({**SMALL, "remove": ["vision"]}).config.remove == (
        "vision",
    )
    for part in ("train", "valid", "test"):
        assert not ds.arrays[part]["vision"].any() and (ds.codes[part]["code_vision"] == -1).all()
        for m in ("text", "audio", "labels"):
            np.testing.assert_array_equal(ds.arrays[part][m], base.arrays[part][m])


def test_separation_scales_the_genuine_codes_only():
    near, far = (SyntheticMMDataset({**SMALL, "separation": s}) for s in (0.5, 3.0))
    np.testing.assert_array_equal(near.arrays["train"]["vision"], far.arrays["train"]["vision"])
    assert not np.array_equal(near.arrays["train"]["text"], far.arrays["train"]["text"])


def test_another_shortcut_modality_moves_the_genuine_signal():
    ds = SyntheticMMDataset({**SMALL, "shortcut": "text"})
    c = ds.codes["train"]
    np.testing.assert_array_equal((c["code_audio"] + c["code_vision"]) % K, c["y"])
    assert ((c["code_text"] == c["y"]) | ~c["shortcut_clean"]).all()


# ---------------------------------------------------------------- determinism and the MulT format


def test_generation_is_deterministic_from_the_seed():
    a, b, c = (SyntheticMMDataset({**SMALL, "seed": s}) for s in (7, 7, 8))
    for part in ("train", "valid", "test"):
        for key in ("text", "audio", "vision", "labels"):
            np.testing.assert_array_equal(a.arrays[part][key], b.arrays[part][key])
    assert not np.array_equal(a.arrays["train"]["text"], c.arrays["train"]["text"])
    assert a.records().equals(b.records())


@pytest.mark.parametrize(("shape", "adapter"), [("iemocap", IEMOCAPDataset), ("mosei", MOSEIDataset)])
def test_written_pickle_reads_back_identically_through_the_real_adapter(tmp_path, shape, adapter):
    ds = SyntheticMMDataset({**SMALL, "shape": shape, "lengths": [5, 7, 9]})
    name = "iemocap_data.pkl" if shape == "iemocap" else "mosei_senti_data.pkl"
    ds.write(tmp_path / name)
    real = adapter({"root": str(tmp_path)})
    cols = ["sample_id", "split", "expr", "part", "row"]
    assert real.records()[cols].equals(ds.records()[cols])
    assert real.info_extras == ds.info_extras and real.keys == ds.keys
    for _, row in ds.records().iloc[::7].iterrows():
        mine, theirs = ds.load(row), real.load(row)
        assert mine.keys() == theirs.keys()
        for key in mine:
            np.testing.assert_array_equal(mine[key], theirs[key])


# ---------------------------------------------------------------- options


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("shape", "mosi"),
        ("regime", "xor"),
        ("shortcut", "face"),
        ("rho", 1.5),
        ("test_variant", "flipped"),
        ("train", 0),
        ("lengths", [20, 20]),
        ("seed", -1),
        ("val_variant", "x"),
        ("val_twin", "x"),
        ("remove", "face"),
        ("separation", 0),
    ],
)
def test_a_bad_option_is_one_sentence(key, value):
    with pytest.raises(FermixError, match=key) as e:
        SyntheticMMDataset({**SMALL, key: value})
    _one_sentence(str(e.value))
