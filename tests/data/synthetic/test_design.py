import numpy as np
import pytest

from fermix.data.synthetic.config import SyntheticConfig
from fermix.data.synthetic.design import cell_counts, class_names, split_table, withheld_cells
from fermix.errors import FermixError


def _cfg(**kw) -> SyntheticConfig:
    base = dict(train_per_cell=30, val_per_cell=5, test_per_cell=10)
    base.update(kw)
    cfg = SyntheticConfig(**base)
    cfg.validate()
    return cfg


def _names(cfg, mask_row):
    return {class_names(cfg)[j] for j in np.flatnonzero(mask_row)}


@pytest.mark.parametrize(
    ("fold", "withheld"),
    [
        ("v1", [{"anger", "happy"}, {"disgust", "sad"}, {"fear", "surprise"}]),
        ("v2", [{"disgust", "sad"}, {"fear", "surprise"}, {"anger", "happy"}]),
        ("v3", [{"fear", "surprise"}, {"anger", "happy"}, {"disgust", "sad"}]),
    ],
)
def test_bias_folds_withhold_the_mixbasic_latin_square(fold, withheld):
    cfg = _cfg(bias="bias100", fold=fold)
    mask = withheld_cells(cfg)
    assert [_names(cfg, mask[d]) for d in range(3)] == withheld
    assert mask.any(axis=0).sum() == 6 and not mask[:, class_names(cfg).index("neutral")].any()
    assert (~mask).any(axis=0).all()  # every class is still trained from some domain


def test_bias100_train_leaves_withheld_cells_empty_and_ood_test_holds_only_them():
    cfg = _cfg(bias="bias100", test="ood")
    mask = withheld_cells(cfg)
    train, test = cell_counts(cfg, "train"), cell_counts(cfg, "test")
    assert (train[mask] == 0).all() and (train[~mask] == 30).all()
    assert (test[mask] == 10).all() and (test[~mask] == 0).all()
    table = split_table(cfg, "train")
    assert not mask[table.domain, table.cls].any()
    table = split_table(cfg, "test")
    assert mask[table.domain, table.cls].all()


def test_bias90_moves_a_tenth_of_a_cell_into_training():
    cfg = _cfg(bias="bias90")
    train = cell_counts(cfg, "train")
    assert (train[withheld_cells(cfg)] == 3).all()


def test_balanced_and_iid_test_splits():
    cfg = _cfg(bias="bias100", test="balanced")
    assert (cell_counts(cfg, "test") == 10).all()
    cfg = _cfg(bias="bias100", test="iid")
    assert ((cell_counts(cfg, "test") > 0) == (cell_counts(cfg, "train") > 0)).all()


def test_ood_without_a_bias_is_refused():
    with pytest.raises(FermixError, match="test=ood needs withheld cells"):
        _cfg(test="ood")


@pytest.mark.parametrize("kind", ["symmetric", "class"])
@pytest.mark.parametrize("rate", [0.2, 0.4])
def test_label_noise_rate_matches_the_setting_and_clean_labels_are_kept(kind, rate):
    cfg = _cfg(noise=rate, noise_kind=kind, train_per_cell=50)
    clean = split_table(_cfg(train_per_cell=50), "train")
    noisy = split_table(cfg, "train")
    np.testing.assert_array_equal(noisy.cls, clean.cls)  # the true label is untouched
    flipped = noisy.expr != noisy.cls
    assert abs(flipped.mean() - rate) < 0.01
    for c in range(7):  # per class too, not just overall
        assert abs(flipped[noisy.cls == c].mean() - rate) < 0.02
    test = split_table(cfg, "test")
    np.testing.assert_array_equal(test.expr, test.cls)  # test labels stay clean


def test_class_dependent_noise_flips_to_the_confusable_class():
    cfg = _cfg(noise=0.3, noise_kind="class")
    t = split_table(cfg, "train")
    names = class_names(cfg)
    happy = names.index("happy")
    flipped = (t.cls == happy) & (t.expr != t.cls)
    assert flipped.any() and (t.expr[flipped] == names.index("surprise")).all()


def test_disjoint_partial_labels_give_three_single_task_training_sets_and_full_test():
    cfg = _cfg(partial="disjoint")
    t = split_table(cfg, "train")
    has_expr = t.expr >= 0
    tasks = np.stack([has_expr, t.has_au, t.has_va]).astype(int)
    assert (tasks.sum(axis=0) == 1).all()  # each sample labelled for exactly one task
    assert all(abs(tasks[k].mean() - 1 / 3) < 0.01 for k in range(3))
    test = split_table(cfg, "test")
    assert (test.expr >= 0).all() and test.has_au.all() and test.has_va.all()


def test_ambiguity_blends_a_share_of_samples_with_another_class():
    t = split_table(_cfg(ambiguity=0.3), "train")
    blended = t.blend_cls >= 0
    assert abs(blended.mean() - 0.3) < 0.05
    assert (t.blend_cls[blended] != t.cls[blended]).all()
    assert ((t.blend_w[blended] >= 0.55) & (t.blend_w[blended] <= 0.8)).all()


def test_splits_never_share_a_subject_and_subjects_belong_to_one_domain():
    cfg = _cfg()
    tables = {s: split_table(cfg, s) for s in ("train", "val", "test")}
    subjects = {s: set(t.subject.tolist()) for s, t in tables.items()}
    assert not subjects["train"] & subjects["val"] and not subjects["train"] & subjects["test"]
    t = tables["train"]
    for subject in subjects["train"]:
        assert len(set(t.domain[t.subject == subject].tolist())) == 1


def test_mixbasic6_classes_have_no_neutral_and_contempt_is_optional():
    assert "neutral" not in class_names(_cfg(classes="mixbasic6"))
    assert class_names(_cfg(classes="basic8"))[-1] == "contempt"
