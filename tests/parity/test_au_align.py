"""au_align against the original (sbelharbi/interpretable-fer-aus): AU maps, alignment loss, CAMs,
ATT-COS / CAM-COS on the golden inputs of benchmarks/parity/au_align.py (tests/golden/au_align/)."""

from __future__ import annotations

import lzma

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fermix.methods.au_align.attention import alignment_loss, layer_attention
from fermix.methods.au_align.cams import class_activation_maps
from fermix.methods.au_align.metrics import attention_cosine, cam_cosine, macro_cosine, per_class_cosine
from fermix.preprocess.au_maps import au_map, au_map_from_units
from tests.parity.golden import assert_close, load, meta

METHOD = "au_align"
MAPS = load(METHOD, "maps")
FACES = MAPS["faces"]
CLASSES = [c.lower() for c in MAPS["classes"]]  # the original's names; fermix's canonical_name maps them

# Per-pixel tolerance of a map: the golden maps are stored quantised to 1/65535 (error <= 7.7e-6);
# the rest is float32 rounding of the same cv2 operations (measured max 7.6e-6 after the fix).
MAP_ATOL = 2e-5


def golden_maps() -> dict[str, np.ndarray]:
    """Decode the stored maps (uint16 second differences along rows, mod 2^16, xz)."""
    raw = lzma.decompress(bytes(MAPS["maps_xz"].numpy()))
    keys = MAPS["map_keys"]
    d2 = np.frombuffer(raw, dtype="<u2").reshape(len(keys), MAPS["size"], MAPS["size"])
    q = np.cumsum(np.cumsum(d2, axis=-1, dtype=np.uint16), axis=-1, dtype=np.uint16)
    return {k: q[i].astype(np.float64) / MAPS["quant"] for i, k in enumerate(keys)}


GOLDEN_MAPS = golden_maps()


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float((a * b).sum() / (np.linalg.norm(a) * np.linalg.norm(b)))


def _check_face(index: int) -> None:
    lm = MAPS["landmarks"][index].numpy()
    size = (MAPS["size"], MAPS["size"])
    for cls in CLASSES:
        key = f"{index}/{cls}"
        heat, valid = au_map(lm, cls, size)
        assert valid == bool(MAPS[f"{key}/valid"]), key
        expected = GOLDEN_MAPS[key]
        cos = _cosine(heat.astype(np.float64), expected)
        assert cos > 0.99999, f"{key}: cosine with the original map {cos:.4f}"
        np.testing.assert_allclose(heat, expected, rtol=0, atol=MAP_ATOL, err_msg=key)
        assert abs(float(heat.astype(np.float64).sum()) - MAPS[f"{key}/sum"]) < 1e-2, key  # sum of 50176 pixels


def test_meta_names_the_original_commit() -> None:
    m = meta(METHOD)
    assert m["repository"] == "sbelharbi/interpretable-fer-aus"
    assert m["commit"] == "66e2bde97a465ced93be20554eaa420a9a490c19"


def test_au_maps_of_the_template_face_equal_the_originals() -> None:
    _check_face(FACES.index("template"))


@pytest.mark.parametrize("face", [f for f in FACES if f != "template"])
def test_au_maps_of_jittered_shifted_and_partly_outside_faces_equal_the_originals(face: str) -> None:
    # Before the truncation fix (landmarks cut to int in the 224 frame, negative half-axes
    # clamped to 0 with the original's fallback) jittered faces scored cosines down to ~0.92.
    _check_face(FACES.index(face))


@pytest.mark.parametrize("face", ["template", "jitter4_0", "jitter8_0", "left_outside"])
def test_class_agnostic_map_of_all_20_aus_equals_the_originals(face: str) -> None:
    i = FACES.index(face)
    heat, valid = au_map_from_units(MAPS["landmarks"][i].numpy(), range(20), (224, 224))
    assert valid
    np.testing.assert_allclose(heat, GOLDEN_MAPS[f"{i}/generic"], rtol=0, atol=MAP_ATOL)


def test_neutral_has_no_map_in_either() -> None:
    assert MAPS["neutral_invalid"] == 1
    assert not au_map(MAPS["landmarks"][0].numpy(), "neutral", (224, 224))[1]


# --- alignment loss ------------------------------------------------------------------------------

LOSS = load(METHOD, "loss")


def _loss_inputs() -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
    feats = [LOSS[f"features{k}"].double().requires_grad_(True) for k in LOSS["layers"]]
    maps = LOSS["maps"].double()
    valid = torch.isfinite(maps).flatten(1).all(1)  # the original's +inf marks an invalid map
    return feats, torch.where(valid[:, None, None, None], maps, torch.zeros_like(maps)), valid


@pytest.mark.parametrize("scale_to", ["attention", "heatmap"])
def test_alignment_loss_equals_the_originals(scale_to: str) -> None:
    feats, maps, valid = _loss_inputs()
    attentions = [layer_attention(f, "random_avg", p=1.0) for f in feats]
    loss = LOSS["lam"] * alignment_loss(attentions, maps, valid, scale_to)
    # fermix computes the cosines in float32 (also under AMP); the original ran in float64.
    assert_close(f"loss/{scale_to}", loss, LOSS[f"{scale_to}/loss"], atol=1e-6, rtol=1e-6)


def test_alignment_loss_gradients_equal_the_originals() -> None:
    # Only scale_to=attention: the original's scale_to=heatmap clamps in place and cannot backpropagate.
    feats, maps, valid = _loss_inputs()
    loss = LOSS["lam"] * alignment_loss([layer_attention(f, "avg") for f in feats], maps, valid, "attention")
    loss.backward()
    for k, f in zip(LOSS["layers"], feats, strict=True):
        expected = LOSS[f"attention/grad{k}"]
        scale = float(expected.abs().max())
        assert_close(f"grad{k}", f.grad, expected, atol=1e-5 * scale)  # float32 cosines: ~1e-7 relative
        assert float(f.grad[~valid].abs().max()) == 0.0  # invalid maps send no gradient


# --- CAMs and ATT-COS / CAM-COS ------------------------------------------------------------------

CAMS = load(METHOD, "cams")
METRICS = load(METHOD, "metrics")


def _tiny_net_features() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The parity script's small net (conv-ReLU, conv-ReLU, GAP + linear) with the golden weights."""
    w = {k.removeprefix("weights/"): v for k, v in CAMS.items() if k.startswith("weights/")}
    x = CAMS["images"].double()
    h = F.relu(F.conv2d(x, w["stem.0.weight"], w["stem.0.bias"], stride=2, padding=1))
    f = F.relu(F.conv2d(h, w["encoder.0.weight"], w["encoder.0.bias"], stride=2, padding=1))
    return x, h, f, w["classification_head.fc.weight"]


@pytest.mark.parametrize("kind", ["cam", "gradcam", "gradcampp", "layercam"])
def test_closed_form_cams_equal_the_original_torch_cam_extractors(kind: str) -> None:
    _, _, f, weight = _tiny_net_features()
    cam = class_activation_maps(f, weight, CAMS["targets"], kind)
    # fermix's CAM is a float32 weighted channel sum; the original ran autograd in float64.
    assert_close(f"{kind} map", cam.double(), CAMS[f"{kind}/map"], atol=1e-5)


def test_tiny_net_reproduces_the_original_logits() -> None:  # guards the scaffolding of the CAM test
    _, _, f, weight = _tiny_net_features()
    logits = f.mean((2, 3)) @ weight.T + CAMS["weights/classification_head.fc.bias"]
    assert_close("logits", logits, CAMS["logits"], atol=1e-12)


@pytest.mark.parametrize("kind", ["cam", "gradcam", "gradcampp", "layercam"])
def test_att_cos_and_cam_cos_per_class_equal_the_originals(kind: str) -> None:
    x, h, f, weight = _tiny_net_features()
    targets = METRICS["targets"]
    maps = METRICS["au_maps"]
    valid = torch.isfinite(maps).flatten(1).all(1)
    maps = torch.where(valid[:, None, None, None], maps, torch.zeros_like(maps))
    # The original scores every layer of model.features (input, stem, encoder) and then the CAM.
    cosines = [attention_cosine(t.mean(1, keepdim=True), maps, valid) for t in (x, h, f)]
    cosines.append(cam_cosine(class_activation_maps(f, weight, targets, kind), maps, valid))
    classes = METRICS["classes"]
    checked = 0
    for j, cos in enumerate(cosines):
        per_class = per_class_cosine(cos, targets, len(classes))
        for c, name in enumerate(classes):
            key = f"{kind}/{name.lower()}"
            assert (c in per_class) == (key in METRICS), name  # neutral: no map, no cosine
            if c in per_class:
                # float32 cosines in fermix (the original stores them as float32 too)
                assert abs(per_class[c] - float(METRICS[key][j])) < 2e-6, (kind, name, j)
                checked += 1
        expected_macro = np.mean([float(METRICS[f"{kind}/{n.lower()}"][j]) for n in classes[1:]])
        assert abs(macro_cosine(cos, targets, len(classes)) - expected_macro) < 2e-6
    assert checked == 4 * 6


# --- the model: one float64 training step ---------------------------------------------------------

MODEL = load(METHOD, "model")


def _fermix_model() -> torch.nn.Module:
    """fermix's au_align ResNet-50 (large maps) with the seeded random init the parity script gave the original."""
    from fermix.data.info import DataInfo
    from fermix.data.label_spaces import get_label_space
    from fermix.methods.au_align.model import AUAlign, AUAlignConfig

    torch.manual_seed(MODEL["seed"])
    info = DataInfo(get_label_space("basic7"), frozenset({"image", "expr", "landmarks"}), 32)
    config = AUAlignConfig(lam=MODEL["lam"], layers=list(MODEL["layers"]), attention="random_avg", p=1.0, map_zoom=1.0)
    return AUAlign(config, info, {"name": "resnet50", "pretrained": None})


def test_training_step_of_resnet50_equals_the_originals_in_float64() -> None:
    model = _fermix_model()
    params = dict(model.named_parameters())
    init = torch.tensor([float(params[n].detach().double().sum()) for n in MODEL["param_names"]], dtype=torch.float64)
    assert_close("initial weights (per-tensor sums)", init, MODEL["init_sums"], atol=0.0)  # same seed, same tensors
    model = model.double().train()
    batch = {"image": MODEL["images"].double(), "expr": MODEL["labels"], "landmarks": MODEL["landmarks"]}
    logits, _, feats = model.features(batch["image"], set(MODEL["layers"]))
    assert [list(feats[k].shape[-2:]) for k in MODEL["layers"]] == MODEL["attention_shapes"]  # large maps
    assert_close("logits", logits, MODEL["logits"], atol=1e-10)  # float64 on both sides
    terms = model.training_step(batch)
    assert_close("ce", terms["ce"], MODEL["ce"], atol=1e-10)
    # the maps are drawn by fermix from the 32 px landmarks; the cosines are float32 in fermix
    assert_close("align (λ·(1 − cos), layers 4 and 5)", terms["align"], MODEL["align"], atol=2e-6)
    (terms["ce"] + terms["align"]).backward()
    norms = torch.stack([params[n].grad.norm() for n in MODEL["param_names"]])
    sums = torch.stack([params[n].grad.sum() for n in MODEL["param_names"]])
    assert_close("gradient norms per tensor", norms, MODEL["grad_norms"], atol=1e-9, rtol=1e-5)
    assert_close("gradient sums per tensor", sums, MODEL["grad_sums"], atol=1e-5 * float(MODEL["grad_norms"].max()))
