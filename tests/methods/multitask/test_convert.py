"""The importer of the authors' released multitask CNN models (methods/multitask/convert.py).

The released files are state dicts of the original's `Model`. tests/golden/multitask_checkpoint/
holds what the original's classes give (benchmarks/parity/multitask_checkpoint.py): the key
names and shapes of that state dict, the original's class / AU orders, the released AU
thresholds, and its heads' outputs on fixed features with every weight set by `seeded_value`.
These tests rebuild such a file from the key table and import it.
"""

from __future__ import annotations

import zlib

import pytest
import torch

from fermix.errors import FermixError
from fermix.methods.multitask import Multitask, MultitaskConfig
from fermix.methods.multitask.convert import (
    ORIGINAL_AUS,
    ORIGINAL_EXPR,
    ORIGINAL_TASKS,
    RELEASED_CNN_THRESHOLDS,
    affwild2_info,
    convert_released,
    write_checkpoint,
)
from tests.parity.golden import assert_close, load

GOLDEN = "multitask_checkpoint"
BACKBONE = {"name": "resnet50_ferplus", "pretrained": None}
INFO = affwild2_info(112)
CLASSES = INFO.label_space.classes  # basic7: neutral, happy, sad, surprise, fear, disgust, anger
AUS = INFO.extras["au_names"]


def seeded_value(key: str, shape: tuple[int, ...], dtype: torch.dtype, salt: int = 0) -> torch.Tensor:
    """The weight benchmarks/parity/multitask_checkpoint.py gives `key` (same recipe, same seed)."""
    if dtype == torch.int64:
        return torch.tensor(zlib.crc32(key.encode()) % 1000, dtype=torch.int64).reshape(shape)
    g = torch.Generator().manual_seed(zlib.crc32(f"{salt}:{key}".encode()))
    value = torch.randn(shape, generator=g, dtype=torch.float32) * 0.05
    if key.endswith("running_var"):
        value = value.abs() + 0.5
    return value


def released(salt: int) -> dict[str, torch.Tensor]:
    """A state dict with the original's keys and shapes (as a released .pth holds), seeded weights."""
    table = load(GOLDEN, "keys")
    return {
        k: seeded_value(k, tuple(shape), getattr(torch, dtype), salt)
        for k, shape, dtype in zip(table["keys"], table["shapes"], table["dtypes"], strict=True)
    }


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("release")
    teacher, student = released(0), released(1)
    torch.save(teacher, folder / "net_epoch_teacher_id_resnet50.pth")
    torch.save(student, folder / "net_epoch_student_0_id_resnet50.pth")
    return folder / "net_epoch_teacher_id_resnet50.pth", folder / "net_epoch_student_0_id_resnet50.pth", teacher


def reference(n_students: int = 1, **kw) -> Multitask:
    with torch.device("meta"):
        return Multitask(MultitaskConfig(n_students=n_students, **kw), INFO, BACKBONE)


def imported(files, **kw) -> dict[str, torch.Tensor]:
    teacher, student, _ = files
    return convert_released(teacher, [student], reference().state_dict(), CLASSES, AUS, **kw)


def test_the_importers_orders_and_thresholds_are_the_originals() -> None:
    table = load(GOLDEN, "keys")
    assert [t.lower() for t in table["tasks"]] == list(ORIGINAL_TASKS)  # classifier.0/1/2 = EXPR/AU/VA
    assert tuple(table["expr_classes"]) == ORIGINAL_EXPR
    assert tuple(table["au_names"]) == ORIGINAL_AUS
    assert tuple(table["au_thresholds_cnn"]) == RELEASED_CNN_THRESHOLDS
    assert table["output_feature_dim"] == 2048


def test_the_regenerated_release_has_the_golden_weights() -> None:
    sums = torch.tensor([float(v.double().sum()) for v in released(0).values()], dtype=torch.float64)
    # same recipe, same draws: only the float64 summation order (thread count) may move the last bit
    assert_close("per-tensor sums", sums, load(GOLDEN, "keys")["sums"], atol=0.0, rtol=1e-13)


def test_every_fermix_weight_comes_from_the_right_released_tensor(files) -> None:
    _, student_path, original = files
    state = imported(files)
    assert state.keys() == reference().state_dict().keys()
    t = {k.removeprefix("members.0."): v for k, v in state.items() if k.startswith("members.0.")}
    # backbone: a few names by hand, then every released backbone tensor used exactly once
    pairs = {
        "backbone.stages.0.0.weight": "conv1_7x7_s2.weight",
        "backbone.stages.0.1.running_var": "conv1_7x7_s2_bn.running_var",
        "backbone.stages.0.4.0.downsample.0.weight": "conv2_1_1x1_proj.weight",
        "backbone.stages.1.0.conv1.weight": "conv3_1_1x1_reduce.weight",
        "backbone.stages.2.5.bn3.bias": "conv4_6_1x1_increase_bn.bias",
        "backbone.stages.3.2.conv2.weight": "conv5_3_3x3.weight",
    }
    for ours, dag in pairs.items():
        assert torch.equal(t[ours], original[f"backbone.model.{dag}"]), ours
    ours_sums = sorted(float(v.double().sum()) for k, v in t.items() if k.startswith("backbone."))
    theirs_sums = sorted(float(v.double().sum()) for k, v in original.items() if k.startswith("backbone.model."))
    assert ours_sums == theirs_sums
    # heads: classifier.0/1/2 -> expr/au/va; bn0, fc_0, bn1, fc_1 -> 0, 1, 3, 4
    expr_rows = [ORIGINAL_EXPR.index({"happy": "Happiness", "sad": "Sadness"}.get(c, c.capitalize())) for c in CLASSES]
    for task, index in (("expr", 0), ("au", 1), ("va", 2)):
        for part, ours in (("bn0", 0), ("fc_0", 1), ("bn1", 3), ("fc_1", 4)):
            for param in ("weight", "bias"):
                theirs = original[f"classifier.{index}.{part}.{param}"]
                if task == "expr" and part == "fc_1":
                    theirs = theirs[expr_rows]  # the original scores the ABAW order, fermix basic7
                assert torch.equal(t[f"heads.{task}.{ours}.{param}"], theirs), (task, part, param)
        assert torch.equal(t[f"heads.{task}.0.running_mean"], original[f"classifier.{index}.bn0.running_mean"])
    student = torch.load(student_path, weights_only=True)
    assert torch.equal(state["members.1.heads.va.4.weight"], student["classifier.2.fc_1.weight"])
    assert state["au_thresholds"].tolist() == pytest.approx(RELEASED_CNN_THRESHOLDS, abs=1e-7)  # same AU order


def test_the_imported_heads_compute_what_the_original_heads_computed(files) -> None:
    model = reference()
    model.load_state_dict(imported(files), assign=True)
    model.eval()
    golden = load(GOLDEN, "heads")
    expr_rows = [ORIGINAL_EXPR.index({"happy": "Happiness", "sad": "Sadness"}.get(c, c.capitalize())) for c in CLASSES]
    with torch.no_grad():
        for task, original in (("expr", "EXPR"), ("au", "AU"), ("va", "VA")):
            head = model.members[0].heads[task]
            feature = head[:4](golden["features"])
            output = head[4](feature)
            expected = golden[f"output_{original}"]
            if task == "expr":
                expected = expected[:, expr_rows]
            # the same float32 operations: equal to rounding (measured max |Δ|: features 0, outputs ≤ 1.5e-8)
            assert_close(f"{task} 128-d feature", feature, golden[f"feature_{original}"], atol=1e-6)
            assert_close(f"{task} output", output, expected, atol=1e-6)


def test_write_checkpoint_gives_a_checkpoint_fermix_test_rebuilds_and_predicts_with(files, tmp_path) -> None:
    from fermix.engine.restore import restore_method

    teacher, student, _ = files
    out = tmp_path / "multitask_released.ckpt"
    meta = write_checkpoint(teacher, [student], out)
    assert meta["config"]["backbone"]["name"] == "resnet50_ferplus"
    assert meta["config"]["data"]["image_size"] == 112 and meta["config"]["method"]["n_students"] == 1
    assert set(meta["provenance"]["imported_from"]["files"]) == {"teacher", "student0"}
    method, _, _ = restore_method(out)
    method.eval()
    with torch.no_grad():
        pred = method.predict({"image": torch.randn(2, 3, 112, 112)})
    assert pred["expr_logits"].shape == (2, 7) and pred["va"].shape == (2, 2)
    au_prob = pred["members_au_prob"][:, 1]  # ensemble = the one student
    assert torch.equal(pred["au_pred"], (au_prob > torch.tensor(RELEASED_CNN_THRESHOLDS)).float())


def test_a_teacher_alone_imports_as_a_teacher_for_method_teacher_ckpt(files, tmp_path) -> None:
    from fermix.methods.multitask.model import load_teacher

    teacher, _, original = files
    out = tmp_path / "teacher.ckpt"
    meta = write_checkpoint(teacher, [], out)
    assert meta["config"]["method"]["stages"] == "teacher"
    students = reference(n_students=2, teacher_ckpt=str(out))  # a student run on Aff-Wild2 with this teacher
    state = load_teacher(str(out), students)
    assert torch.equal(state["heads.va.4.weight"], original["classifier.2.fc_1.weight"])


def _broken(files, tmp_path, change) -> str:
    _, student, original = files
    state = dict(original)
    change(state)
    path = tmp_path / "broken.pth"
    torch.save(state, path)
    with pytest.raises(FermixError) as err:
        convert_released(path, [student], reference().state_dict(), CLASSES, AUS)
    text = str(err.value)
    assert "\n" not in text and "broken.pth" in text, text
    return text


def test_a_file_that_does_not_fit_is_refused_in_one_sentence_naming_the_original_key(files, tmp_path) -> None:
    def va_with_10_bins(s):
        s["classifier.2.fc_1.weight"] = s["classifier.2.fc_1.weight"][:20]

    assert "classifier.2.fc_1.weight" in _broken(files, tmp_path, va_with_10_bins)
    assert "classifier.1.bn1.bias" in _broken(files, tmp_path, lambda s: s.pop("classifier.1.bn1.bias"))
    assert "classifier.3.fc_1.weight" in _broken(
        files, tmp_path, lambda s: s.__setitem__("classifier.3.fc_1.weight", torch.zeros(1))
    )
    assert "CNN-RNN" in _broken(
        files, tmp_path, lambda s: s.__setitem__("backbone.backbone.model.conv1_7x7_s2.weight", torch.zeros(1))
    )
    teacher_only = reference(n_students=0, stages="teacher").state_dict()
    with pytest.raises(FermixError, match="does not exist"):
        convert_released(tmp_path / "nope.pth", [], teacher_only, CLASSES, AUS)


def test_a_dataparallel_file_imports_like_a_plain_one(files, tmp_path) -> None:
    _, student, original = files
    path = tmp_path / "dp.pth"
    torch.save({f"module.{k}": v for k, v in original.items()}, path)
    state = convert_released(path, [student], reference().state_dict(), CLASSES, AUS)
    plain = imported(files)
    assert all(torch.equal(state[k], plain[k]) for k in plain)
