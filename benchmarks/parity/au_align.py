"""Golden numbers for au_align from the original code (sbelharbi/interpretable-fer-aus).

The original has no callable training step, so this runs its own functions on fixed seeded inputs
(float64 where the original allows it) and writes the numbers to tests/golden/au_align/:

- `maps`: AU maps from `dlib/face_landmarks/action_units.build_all_action_units` followed by the
  Dataset's max + min-max normalisation (`wsol_loader._preprape_au_hmap`), for a template face and
  jittered, shifted and partly-outside faces in the original's 224×224 frame, for the six class
  codebooks and the class-agnostic (all 20 AUs) map. Maps are stored quantised to uint16
  (step 1/65535) and xz-compressed.
- `loss`: `dlib/losses/align_to_heatmap.AlignToHeatMap` (λ, cosine, avg attention, both
  `scale_to`) on seeded float64 feature maps of two layers and AU-like maps with invalid (+inf)
  samples, and the gradient it sends into each layer's features.
- `cams`: the vendored torch-cam extractors (`dlib/cams`: CAM, GradCAM, GradCAMpp, LayerCAM, with
  autograd through the hooks) on a small float64 network whose head is the original's `WGAP`.
- `metrics`: ATT-COS / CAM-COS from the evaluation code of `inference_wsol.CAMComputer`:
  `minibatch_accum` → `update_avg_per_cl_au_cosine` → `avg_au_cosine`, per class.
- `model`: one float64 forward/backward of `dlib/stdcl/classifier.STDClassifier` (ResNet-50 with
  large maps, WGAP head) given fermix's seeded initial weights (built here with fermix, renamed to
  the original's layout), with torch's CE and `AlignToHeatMap` on layers 4 and 5: logits, both
  loss terms, and the norm and sum of every parameter's gradient.

Usage: python benchmarks/parity/au_align.py --checkout /path/to/interpretable-fer-aus

The original's package is called `dlib`, like the real dlib library; the script never imports the
real one. No extra pip package is needed: the original modules whose imports pull GPU, plotting or
face-detection packages are replaced by shims (see PATCHES, also recorded in meta.json).
"""

from __future__ import annotations

import argparse
import ast
import lzma
import sys
import types
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import verify_checkout, write_golden

REPOSITORY = "sbelharbi/interpretable-fer-aus"
COMMIT = "66e2bde97a465ced93be20554eaa420a9a490c19"
EXPECTED = {  # sha256 at COMMIT of every original file this script executes (imported or read with ast)
    "dlib/face_landmarks/action_units.py": "65eb3a5c0d848ee1125832ecc448da4bd615e99090367c7164209d8ff12c63cf",
    "dlib/configure/constants.py": "2cdb81bca9372e3362094fbc69f66cf73e7fba59a4a11ba0d442fd7d8ad196a3",
    "dlib/datasets/wsol_loader.py": "858a790545a9456eb3a9240a211cf6393df657276aef19c8dbfc77d80fa14554",
    "dlib/losses/align_to_heatmap.py": "0870489eb2c34665e60ba95f333b0e95e934a5f771a9f8c36585dee88efae71e",
    "dlib/losses/elementary.py": "9a5bbc1bcf6232af194fa34c85b47837bcc7fb7ce458b46ff6fd99ac1185bd77",
    "dlib/losses/elb.py": "20fe62d1cd51b58864cf2ebd71bae295c67de73b2aeb827480f8efcbaac2832a",
    "dlib/utils/reproducibility.py": "2068c1898bd7981cb23ab064d456234ee333dbf8068e8e83b9dd88a142f63fc4",
    "dlib/cams/core.py": "6e318043b413314c750b17b7267bd39d711089342f920a02073b25b436d6c904",
    "dlib/cams/cam.py": "c3a701b251349d26987bd9d2e59bb3dd343c3614d2028e9172e2a440428332dc",
    "dlib/cams/gradcam.py": "bb3ed00d3756b3aaf52a471f97ab4f8a5775e07eb4f03e98e1570cacc1b7a9a7",
    "dlib/poolings/core.py": "bcf61c80a5db999dbddda0e927a46e32eba9efc45da06a8b58df665fd6634188",
    "dlib/div_classifiers/parts/acol.py": "6e486f057da841f76520fb48e8c9e099357ee70e34e385d5f7676339db891fce",
    "dlib/div_classifiers/parts/util.py": "c1b7a6bc58500ef4b43b7627c0c638ed6646499019f998f65df966957e18d989",
    "dlib/learning/inference_wsol.py": "4c78d0a44324e9df93fa4deb8edde80469db9afe61b7438aa5fe45089b14caf7",
    "dlib/metrics/wsol_metrics.py": "f12700024051010a83d2b72e33bd389345bb19f78d732afc387d39fe79dfd0be",
    "dlib/encoders/__init__.py": "eb9db8d652d4ae2353b5ab12b4bbbff092919281ae6da192cbc61705d888c9c5",
    "dlib/encoders/_base.py": "2eeb6ae4135a0e57f311a4fcf4240ec3ccf52ab0f963c85e7bc2f8b672e86a08",
    "dlib/encoders/_utils.py": "810c3a1a00d007d77d3cf88d01664d31eeea489c2edf5bc7ae05ce424803fe9f",
    "dlib/encoders/resnet.py": "af834b1b32d5cdabff0598957969437a8f8903e6298d6ccaaa43364dca826e9e",
    "dlib/div_classifiers/parts/adl.py": "17c67fc9d0add7bd982a074ab24651b06f0aba50d7770370f4962accf4063a1e",
    "dlib/base/heads.py": "3eb7137d7b0529e7c5c3f20e72c2d9c7c6947fd6d72b19e18790b184b95124a8",
    "dlib/base/initialization.py": "a8d87ee3702267cf1bcc0ee32b0c396ffea42520cee507d958f1375671a4ef38",
    "dlib/base/model.py": "b46a3727ffb9853e38720d318ab76f0ebaf787611853a88378c76d97cc9227c0",
    "dlib/base/modules.py": "cee62bd8c2120103362271503f7eb2e354bed261a9a862029dddfa421c1be903",
    "dlib/stdcl/classifier.py": "ef43d40d7da06d51310f51027edafe75eb5ef8ddc1eed5c8d9e758963a1edfa7",
}
PATCHES = [
    "Packages `dlib`, `dlib.face_landmarks`, `dlib.losses`, `dlib.cams`, `dlib.poolings`, `dlib.configure`, "
    "`dlib.utils`, `dlib.div_classifiers(.parts)`, `dlib.stdcl` are empty namespace modules (their __init__ "
    "files import face detectors, GPU tools and every model); the leaf modules listed in EXPECTED run unchanged; "
    "`dlib.poolings.WGAP` is set to `dlib.poolings.core.WGAP`, as that package's __init__ re-exports it.",
    "`dlib.utils.shared`, `dlib.utils.tools` and `dlib.dllogger` are stubs (only used by the originals' file "
    "I/O, logging and visualisation helpers, not by the functions run here); `t2n` is tensor -> numpy.",
    "`pretrainedmodels.models.torchvision_models.pretrained_settings` is an empty table (download URLs only; "
    "no pretrained weights are loaded).",
    "`dlib.encoders` and `dlib.base` are namespace modules too; `get_encoder` is loaded from "
    "dlib/encoders/__init__.py with `ast` and given only the ResNet registry (`resnet_encoders`), and "
    "`dlib.base.STDClModel` / `SegmentationHead` are set as dlib/base/__init__.py re-exports them.",
    "`matplotlib.use` is a no-op (action_units.py asks for the notebook backend `nbAgg`).",
    "`_preprape_au_hmap` (wsol_loader.py), `compute_cosine_one_sample` (wsol_metrics.py) and the methods "
    "`minibatch_accum`, `update_avg_per_cl_au_cosine`, `avg_au_cosine` (inference_wsol.py) are loaded from "
    "the checkout's source with `ast` and run on a stand-in `self` (those modules import kornia, pynvml and "
    "the data loaders at import time).",
]

CLASSES = ("Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise")  # the original's names
SIZE = 224


# --- importing the original ------------------------------------------------------------------------


def _namespace(name: str, path: Path | None = None) -> types.ModuleType:
    mod = types.ModuleType(name)
    mod.__path__ = [str(path)] if path is not None else []  # type: ignore[attr-defined]
    sys.modules[name] = mod
    return mod


def _stub(name: str, **attrs: Any) -> types.ModuleType:
    mod = types.ModuleType(name)
    mod.__dict__.update(attrs)
    sys.modules[name] = mod
    return mod


def load_original(checkout: Path) -> dict[str, Any]:
    """Import the needed leaf modules of the checkout's `dlib` under shims (see PATCHES)."""
    if any(k == "dlib" or k.startswith("dlib.") for k in sys.modules):
        sys.exit("parity: a module called `dlib` is already imported; run this script in a fresh process")
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.use = lambda *a, **k: None  # type: ignore[assignment]
    d = checkout / "dlib"
    for pkg in (
        "",
        "face_landmarks",
        "losses",
        "cams",
        "poolings",
        "configure",
        "utils",
        "div_classifiers",
        "div_classifiers/parts",
        "stdcl",
        "datasets",
        "learning",
        "metrics",
    ):
        _namespace("dlib" + ("." + pkg.replace("/", ".") if pkg else ""), d / pkg)
    sys.path.insert(0, str(checkout))  # the originals' own `sys.path.append(root_dir)` style

    def _unused(*a: Any, **k: Any) -> Any:
        raise RuntimeError("stubbed original helper called")

    _stub(
        "dlib.utils.shared",
        **{
            n: _unused
            for n in (
                "reformat_id",
                "configure_metadata",
                "get_image_ids",
                "get_class_labels",
                "get_landmarks",
                "announce_msg",
                "str2bool",
                "fmsg",
                "is_cc",
                "get_tag_device",
            )
        },
    )
    _stub("dlib.utils.tools", get_root_wsol_dataset=_unused, t2n=lambda t: t.detach().cpu().numpy())
    _stub("dlib.dllogger", log=lambda *a, **k: None)
    _stub("pretrainedmodels")
    _stub("pretrainedmodels.models")
    _stub("pretrainedmodels.models.torchvision_models", pretrained_settings=defaultdict(dict))  # download URLs only
    for pkg in ("encoders", "base"):
        _namespace(f"dlib.{pkg}", d / pkg)
    sys.modules["dlib.utils.shared"].count_params = lambda m: sum(p.numel() for p in m.parameters())

    from dlib.poolings.core import WGAP

    sys.modules["dlib.poolings"].WGAP = WGAP  # what dlib/poolings/__init__.py re-exports
    from dlib.base.heads import SegmentationHead
    from dlib.base.model import STDClModel
    from dlib.encoders.resnet import resnet_encoders

    sys.modules["dlib.base"].STDClModel = STDClModel  # what dlib/base/__init__.py re-exports
    sys.modules["dlib.base"].SegmentationHead = SegmentationHead
    from dlib.configure import constants as _constants

    enc_ns: dict[str, Any] = {"encoders": dict(resnet_encoders), "constants": _constants}
    _exec_defs(d / "encoders/__init__.py", ["get_encoder"], enc_ns)  # only the ResNet registry
    sys.modules["dlib.encoders"].get_encoder = enc_ns["get_encoder"]
    import dlib.cams.cam as cam_mod
    import dlib.cams.gradcam as gradcam_mod
    import torch.nn.functional as F
    from dlib.configure import constants
    from dlib.face_landmarks import action_units
    from dlib.losses.align_to_heatmap import AlignToHeatMap
    from dlib.stdcl.classifier import STDClassifier

    ns: dict[str, Any] = {"np": np, "torch": torch, "F": F, "constants": constants, "Union": Any, "Tuple": Any}
    _exec_defs(d / "datasets/wsol_loader.py", ["_preprape_au_hmap"], ns)
    _exec_defs(d / "metrics/wsol_metrics.py", ["compute_cosine_one_sample"], ns)
    ns["t2n"] = sys.modules["dlib.utils.tools"].t2n
    methods = _exec_methods(
        d / "learning/inference_wsol.py",
        "CAMComputer",
        ["minibatch_accum", "update_avg_per_cl_au_cosine", "avg_au_cosine"],
        ns,
    )
    return {
        "constants": constants,
        "au": action_units,
        "AlignToHeatMap": AlignToHeatMap,
        "WGAP": WGAP,
        "cams": {
            "cam": cam_mod.CAM,
            "gradcam": gradcam_mod.GradCAM,
            "gradcampp": gradcam_mod.GradCAMpp,
            "layercam": gradcam_mod.LayerCAM,
        },
        "prep": ns["_preprape_au_hmap"],
        "STDClassifier": STDClassifier,
        "methods": methods,
    }


def _exec_defs(path: Path, names: list[str], ns: dict[str, Any]) -> None:
    tree = ast.parse(path.read_text())
    found = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in names]
    assert sorted(n.name for n in found) == sorted(names), (path, names)
    exec(compile(ast.Module(body=found, type_ignores=[]), str(path), "exec"), ns)


def _exec_methods(path: Path, cls: str, names: list[str], ns: dict[str, Any]) -> dict[str, Any]:
    tree = ast.parse(path.read_text())
    (node,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls]
    found = [n for n in node.body if isinstance(n, ast.FunctionDef) and n.name in names]
    assert sorted(n.name for n in found) == sorted(names), (path, cls, names)
    local: dict[str, Any] = {}
    exec(compile(ast.Module(body=found, type_ignores=[]), str(path), "exec"), ns, local)
    return local


# --- inputs ----------------------------------------------------------------------------------------


def template() -> np.ndarray:
    """A frontal iBUG-68 face in a 224 px crop (the same face as tests/preprocess/test_au_maps.py)."""
    pts = np.zeros((68, 2))
    t = np.linspace(np.pi, 0, 17)
    pts[0:17] = np.c_[112 - 72 * np.cos(t), 100 + 105 * np.sin(t)]
    pts[17:22] = [(52, 72), (63, 67), (76, 66), (88, 67), (100, 70)]
    pts[27:31] = [(112, 95), (112, 112), (112, 128), (112, 145)]
    pts[31:36] = [(96, 152), (104, 155), (112, 157), (120, 155), (128, 152)]
    pts[36:42] = [(66, 92), (74, 88), (88, 88), (96, 92), (88, 96), (74, 96)]
    pts[48:54] = [(85, 170), (94, 164), (104, 160), (112, 162), (120, 160), (130, 164)]
    pts[54:60] = [(139, 170), (130, 177), (120, 180), (112, 181), (104, 180), (94, 177)]
    pts[60:68] = [(90, 170), (104, 166), (112, 166), (120, 166), (134, 170), (120, 174), (112, 174), (104, 174)]
    for right, left in zip(range(22, 27), range(21, 16, -1), strict=True):
        pts[right] = (224 - pts[left, 0], pts[left, 1])
    for right, left in {42: 39, 43: 38, 44: 37, 45: 36, 46: 41, 47: 40}.items():
        pts[right] = (224 - pts[left, 0], pts[left, 1])
    return pts


def faces() -> tuple[np.ndarray, list[str]]:
    """Template, sub-pixel offsets, jitter of 2/4/8 px (8 px crosses eyelids: negative half-axes),
    a shifted + scaled face, and faces partly outside the image (negative coordinates)."""
    rng = np.random.default_rng(20240207)
    base = template()
    out, names = [base], ["template"]
    out.append(base + rng.uniform(0.0, 1.0, base.shape))
    names.append("subpixel")
    for sigma, n in ((2.0, 1), (4.0, 3), (8.0, 2)):
        for i in range(n):
            out.append(base + rng.normal(0.0, sigma, base.shape))
            names.append(f"jitter{sigma:g}_{i}")
    out.append((base - 112) * 0.9 + 112 + np.array([9.3, -6.7]))
    names.append("shift_scale")
    out.append(base + np.array([-70.4, 0.0]) + rng.normal(0.0, 3.0, base.shape))
    names.append("left_outside")
    out.append(base + np.array([30.2, 75.6]) + rng.normal(0.0, 3.0, base.shape))
    names.append("bottom_outside")
    return np.stack(out), names


# --- cases -----------------------------------------------------------------------------------------


def pack_maps(maps: list[np.ndarray]) -> torch.Tensor:
    """Maps in [0, 1] quantised to uint16 (step 1/65535), second differences along rows (mod 2^16), xz."""
    q = np.round(np.clip(np.stack(maps), 0.0, 1.0) * 65535.0).astype(np.uint16)
    d1 = np.diff(q, axis=-1, prepend=np.uint16(0))
    d2 = np.diff(d1, axis=-1, prepend=np.uint16(0))  # uint16 arithmetic wraps: exact inverse by two cumsums
    blob = lzma.compress(d2.astype("<u2").tobytes(), preset=9 | lzma.PRESET_EXTREME)
    return torch.frombuffer(bytearray(blob), dtype=torch.uint8).clone()


def case_maps(orig: dict[str, Any]) -> dict[str, Any]:
    au, c, prep = orig["au"], orig["constants"], orig["prep"]
    lms, names = faces()
    payload: dict[str, Any] = {
        "landmarks": torch.from_numpy(lms),
        "faces": names,
        "classes": list(CLASSES),
        "size": SIZE,
        "quant": 65535,
    }
    kinds = [(cl, c.HEATMAP_AUNITS_LNMKS) for cl in CLASSES] + [("Happiness", c.HEATMAP_GENERIC_AUNITS_LNMKS)]
    keys, stored = [], []
    for i, lm in enumerate(lms):
        for cl, kind in kinds:
            stack = au.build_all_action_units(
                lndmks=[(float(x), float(y)) for x, y in lm], h=SIZE, w=SIZE, cl=cl, aus_type=kind
            )
            heat = prep(heatmap=stack.max(axis=0, initial=-1), normalize=True)  # the Dataset's two steps
            key = f"{i}/{'generic' if kind == c.HEATMAP_GENERIC_AUNITS_LNMKS else cl.lower()}"
            valid = bool(np.isfinite(heat).all())
            payload[f"{key}/valid"] = int(valid)
            if valid:
                keys.append(key)
                stored.append(heat)
                payload[f"{key}/sum"] = float(heat.astype(np.float64).sum())
    payload["map_keys"] = keys
    payload["maps_xz"] = pack_maps(stored)
    neutral = au.build_all_action_units(
        lndmks=[tuple(p) for p in lms[0]], h=SIZE, w=SIZE, cl=c.NEUTRAL, aus_type=c.HEATMAP_AUNITS_LNMKS
    )
    payload["neutral_invalid"] = int(bool(np.isinf(neutral).all()))
    return payload


def case_loss(orig: dict[str, Any]) -> dict[str, Any]:
    c = orig["constants"]
    g = torch.Generator().manual_seed(7)
    b = 5
    # inputs hold float32 values (small files) and are run in float64
    feats = [(torch.randn(b, 6, 7, 7, generator=g) + 0.3).double(), torch.randn(b, 4, 10, 10, generator=g).double()]
    maps = torch.rand(b, 1, 8, 8, generator=g)
    maps = torch.nn.functional.interpolate(maps, size=(28, 28), mode="bilinear", align_corners=False).double()
    maps = (maps - maps.amin((2, 3), keepdim=True)) / (
        maps.amax((2, 3), keepdim=True) - maps.amin((2, 3), keepdim=True)
    )
    maps[[1, 3]] = float("inf")  # invalid samples (neutral / failed landmarks), as the original marks them
    payload: dict[str, Any] = {"lam": 4.0, "layers": [1, 2]}
    for i, f in enumerate(feats):
        payload[f"features{i + 1}"] = f.float()  # exact: the values are float32
    payload["maps"] = maps.float()
    for scale_to in (c.SCALE_TO_ATTEN, c.SCALE_TO_HEATM):
        loss_fn = orig["AlignToHeatMap"](cuda_id="cpu", lambda_=4.0, start_epoch=0, end_epoch=-1)
        loss_fn.init_class_weights(n_cls=7, style=c.CLWNONE)  # what the MasterLoss does for every term
        loss_fn.set_it(
            alignment=c.ALIGN_RANDOM_AVG,
            p=1.0,
            q=1.0,
            atten_layers="1-2",
            loss_type=c.A_COSINE,
            scale_to=scale_to,
            use_elb=False,
            norm_att=c.NORM_NONE,
        )
        leaves = [f.clone().requires_grad_(True) for f in feats]
        model = types.SimpleNamespace(features=[torch.zeros(b, 3, 28, 28, dtype=torch.float64), *leaves])
        loss = loss_fn(model=model, epoch=0, heatmap=maps.clone())
        tag = "attention" if scale_to == c.SCALE_TO_ATTEN else "heatmap"
        payload[f"{tag}/loss"] = loss.detach().reshape(())
        if scale_to == c.SCALE_TO_ATTEN:  # scale_to_heatmap clamps the upsampled attention in place
            loss.sum().backward()  # (`_clamp_minibatch`), which autograd refuses: no gradient there
            for i, leaf in enumerate(leaves):
                payload[f"{tag}/grad{i + 1}"] = leaf.grad.float()  # float32 is ample for a 1e-5 tolerance
    return payload


class TinyNet(nn.Module):
    """A small float64 CNN with the original's WGAP head; `features` as the original's models keep them."""

    def __init__(self, wgap: type, classes: int = 7) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU())
        self.encoder = nn.Sequential(nn.Conv2d(8, 12, 3, stride=2, padding=1), nn.ReLU())  # the hooked layer
        self.classification_head = wgap(in_channels=12, classes=classes)
        self.features: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor, target: Any = None) -> torch.Tensor:
        h = self.stem(x)
        f = self.encoder(h)
        self.features = [x, h, f]
        return self.classification_head(f)


def case_cams_and_metrics(orig: dict[str, Any], maps: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    torch.manual_seed(11)
    net = TinyNet(orig["WGAP"]).double().eval()
    g = torch.Generator().manual_seed(12)
    b, hw = 8, 16
    images = torch.randn(b, 3, hw, hw, generator=g).half().double()  # float16 values (small files), run in float64
    targets = torch.tensor([3, 1, 4, 3, 0, 6, 5, 2])  # basic7 order: neutral(0) has no map
    state = {k: v.clone() for k, v in net.state_dict().items()}
    cams: dict[str, Any] = {
        "images": images.half(),
        "targets": targets,
        **{f"weights/{k}": v for k, v in state.items()},
    }
    lowres: dict[str, torch.Tensor] = {}
    for kind, cls in orig["cams"].items():
        out = []
        for i in range(b):
            extractor = cls(
                net, target_layer="encoder", **({"fc_layer": "classification_head.fc"} if kind == "cam" else {})
            )
            with torch.set_grad_enabled(kind != "cam"):
                logits = net(images[i : i + 1])
                out.append(extractor(class_idx=int(targets[i]), scores=logits, normalized=True).detach())
            extractor.clear_hooks()
        lowres[kind] = torch.stack(out)[:, None]
        cams[f"{kind}/map"] = lowres[kind].clone()
    cams["logits"] = net(images).detach()

    # ATT-COS / CAM-COS: the original's evaluation loop on this net, with AU maps of the golden faces.
    basic7 = ["Neutral", "Happiness", "Sadness", "Surprise", "Fear", "Disgust", "Anger"]
    au, c, prep = orig["au"], orig["constants"], orig["prep"]
    lms = maps["landmarks"].numpy()
    heat = torch.full((b, 1, hw, hw), float("inf"), dtype=torch.float64)
    for i in range(b):
        stack = au.build_all_action_units(
            lndmks=[tuple(p) for p in lms[i]],
            h=SIZE,
            w=SIZE,
            cl=basic7[int(targets[i])],
            aus_type=c.HEATMAP_AUNITS_LNMKS,
        )
        full = prep(heatmap=stack.max(axis=0, initial=-1), normalize=True)
        if np.isfinite(full).all():
            import cv2

            heat[i, 0] = torch.from_numpy(cv2.resize(full, (hw, hw), interpolation=cv2.INTER_AREA).astype(np.float64))
    metrics: dict[str, Any] = {"targets": targets, "au_maps": heat.clone(), "classes": basic7}  # images: `cams`
    m = orig["methods"]
    for kind in orig["cams"]:
        holder = types.SimpleNamespace()
        holder.args = types.SimpleNamespace(align_atten_to_heatmap=False, method="STDClassifier")
        holder.req_grad = kind != "cam"
        holder.int_to_cl = dict(enumerate(basic7))
        holder.cl_to_int = {v: k for k, v in holder.int_to_cl.items()}
        holder.model = net
        holder.is_avail_avg_per_cl_au_cosine = False
        holder.avg_per_cl_cams = {k: {"cam": None, "nbr": 0.0} for k in basic7}
        holder.avg_per_cl_aus_maps = {k: {"cam": None, "nbr": 0.0} for k in basic7}
        holder.avg_per_cl_au_cosine = {k: {c.AU_COSINE_MTR: None, "nbr": 0.0} for k in basic7}
        holder.evaluator = types.SimpleNamespace(accumulate=lambda *a, **k: None)
        extractor_cls = orig["cams"][kind]

        def get_cam_one_sample(image: torch.Tensor, target: int, _cls: Any = extractor_cls, _k: str = kind) -> Any:
            ex = _cls(net, target_layer="encoder", **({"fc_layer": "classification_head.fc"} if _k == "cam" else {}))
            logits = net(image)
            cam = ex(class_idx=target, scores=logits, normalized=True, reshape=None)
            ex.clear_hooks()
            return torch.nan_to_num(cam, nan=0.0, posinf=1.0, neginf=0.0), logits

        holder.get_cam_one_sample = get_cam_one_sample
        holder.update_avg_per_cl_au_cosine = types.MethodType(m["update_avg_per_cl_au_cosine"], holder)
        m["minibatch_accum"](
            holder,
            images=images,
            targets=targets,
            image_ids=list(range(b)),
            image_size=(hw, hw),
            au_heatmaps=heat.clone(),
        )
        m["avg_au_cosine"](holder)
        for cl in basic7:
            entry = holder.avg_per_cl_au_cosine[cl]
            if entry["nbr"] > 0:
                # order: attention of model.features[0] (input), [1], [2], then the CAM
                metrics[f"{kind}/{cl.lower()}"] = entry[c.AU_COSINE_MTR].reshape(-1).double().clone()
                metrics[f"{kind}/{cl.lower()}/n"] = int(entry["nbr"])
    return cams, metrics


# fermix's ResNet backbone (torchvision layout in `stages`) -> the original's ResNetEncoder names
_TO_ORIGINAL = {
    "backbone.stages.0.0.": "encoder.conv1.",
    "backbone.stages.0.1.": "encoder.bn1.",
    "backbone.stages.0.4.": "encoder.layer1.",
    "backbone.stages.1.": "encoder.layer2.",
    "backbone.stages.2.": "encoder.layer3.",
    "backbone.stages.3.": "encoder.layer4.",
    "classifier.": "classification_head.fc.",
}
MODEL_SEED = 0
MODEL_LAYERS = [4, 5]


def fermix_model() -> nn.Module:
    """fermix's au_align ResNet-50 (random init from MODEL_SEED, large maps), as the parity test builds it."""
    from fermix.data.info import DataInfo
    from fermix.data.label_spaces import get_label_space
    from fermix.methods.au_align.model import AUAlign, AUAlignConfig

    torch.manual_seed(MODEL_SEED)
    info = DataInfo(get_label_space("basic7"), frozenset({"image", "expr", "landmarks"}), 32)
    config = AUAlignConfig(lam=4.0, layers=list(MODEL_LAYERS), attention="random_avg", p=1.0, map_zoom=1.0)
    return AUAlign(config, info, {"name": "resnet50", "pretrained": None})


def case_model(orig: dict[str, Any]) -> dict[str, Any]:
    """One forward/backward of the original's STDClassifier (ResNet-50, large maps, WGAP) in float64
    with fermix's seeded initial weights: logits, CE, the alignment term on layers 4 and 5, and the
    gradient of every parameter tensor (norm and sum)."""
    import cv2

    c, au, prep = orig["constants"], orig["au"], orig["prep"]
    ours = fermix_model()
    state = {}
    for key, value in ours.state_dict().items():
        prefix = next(p for p in _TO_ORIGINAL if key.startswith(p))
        state[_TO_ORIGINAL[prefix] + key[len(prefix) :]] = value.clone()
    model = orig["STDClassifier"](
        encoder_name="resnet50",
        encoder_weights=None,
        large_maps=True,
        aux_params={"pooling_head": "WGAP", "classes": 7},
    )
    model.load_state_dict(state, strict=True)
    model = model.double().train()
    g = torch.Generator().manual_seed(13)
    b, hw = 4, 32
    images = torch.randn(b, 3, hw, hw, generator=g).half().double()  # float16 values (small files), run in float64
    labels = torch.tensor([1, 0, 6, 4])  # happy, neutral (no map), anger, fear (basic7 order)
    basic7 = ["Neutral", "Happiness", "Sadness", "Surprise", "Fear", "Disgust", "Anger"]
    lms, _ = faces()
    lm224 = lms[[2, 3, 4, 5]]
    lm32 = (lm224 + 0.5) * (hw / SIZE) - 0.5  # the same faces in the 32 px input (pixel centres at integers)
    heat = torch.full((b, 1, hw, hw), float("inf"), dtype=torch.float64)
    for i in range(b):
        back = (lm32[i] + 0.5) * (SIZE / hw) - 0.5  # what fermix maps the 32 px landmarks back to
        assert (np.trunc(back) == np.trunc(lm224[i])).all(), "truncation differs after the round trip"
        stack = au.build_all_action_units(
            lndmks=[tuple(p) for p in lm224[i]],
            h=SIZE,
            w=SIZE,
            cl=basic7[int(labels[i])],
            aus_type=c.HEATMAP_AUNITS_LNMKS,
        )
        full = prep(heatmap=stack.max(axis=0, initial=-1), normalize=True)
        if np.isfinite(full).all():  # at 32 px: resized like fermix's au_map(out_size=32) (INTER_AREA)
            heat[i, 0] = torch.from_numpy(cv2.resize(full, (hw, hw), interpolation=cv2.INTER_AREA).astype(np.float64))
    logits = model(images)
    ce = torch.nn.functional.cross_entropy(logits, labels)  # the original's CE term is torch's
    loss_fn = orig["AlignToHeatMap"](cuda_id="cpu", lambda_=4.0, start_epoch=0, end_epoch=-1)
    loss_fn.init_class_weights(n_cls=7, style=c.CLWNONE)
    loss_fn.set_it(
        alignment=c.ALIGN_RANDOM_AVG,
        p=1.0,
        q=1.0,
        atten_layers="-".join(map(str, MODEL_LAYERS)),
        loss_type=c.A_COSINE,
        scale_to=c.SCALE_TO_ATTEN,
        use_elb=False,
        norm_att=c.NORM_NONE,
    )
    align = loss_fn(model=model, epoch=0, heatmap=heat.clone()).reshape(())
    (ce + align).backward()
    payload: dict[str, Any] = {
        "seed": MODEL_SEED,
        "layers": list(MODEL_LAYERS),
        "lam": 4.0,
        "images": images.half(),
        "labels": labels,
        "landmarks": torch.from_numpy(lm32),
        "logits": logits.detach(),
        "ce": ce.detach(),
        "align": align.detach(),
        "attention_shapes": [list(model.features[k].shape[-2:]) for k in MODEL_LAYERS],
    }
    params = dict(model.named_parameters())
    names, init_sums, grad_norms, grad_sums = [], [], [], []
    for key, value in ours.state_dict().items():
        prefix = next(p for p in _TO_ORIGINAL if key.startswith(p))
        name = _TO_ORIGINAL[prefix] + key[len(prefix) :]
        if name not in params:
            continue  # BatchNorm buffers
        names.append(key)
        init_sums.append(float(value.double().sum()))
        grad_norms.append(float(params[name].grad.norm()))
        grad_sums.append(float(params[name].grad.sum()))
    payload.update(
        param_names=names,
        init_sums=torch.tensor(init_sums, dtype=torch.float64),
        grad_norms=torch.tensor(grad_norms, dtype=torch.float64),
        grad_sums=torch.tensor(grad_sums, dtype=torch.float64),
    )
    return payload


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkout", type=Path, required=True, help=f"a checkout of {REPOSITORY} at {COMMIT}")
    parser.add_argument("--print-hashes", action="store_true", help="print the sha256 of EXPECTED's files and exit")
    args = parser.parse_args()
    if args.print_hashes:
        from _common import hashes_of

        for rel, digest in hashes_of(args.checkout, EXPECTED).items():
            print(f'    "{rel}": "{digest}",')
        return
    checkout = verify_checkout(args.checkout, EXPECTED, REPOSITORY, COMMIT)
    torch.set_num_threads(1)
    orig = load_original(checkout)
    maps = case_maps(orig)
    loss = case_loss(orig)
    cams, metrics = case_cams_and_metrics(orig, maps)
    model = case_model(orig)
    meta = {
        "repository": REPOSITORY,
        "commit": COMMIT,
        "script": "benchmarks/parity/au_align.py",
        "command": "python benchmarks/parity/au_align.py --checkout /path/to/interpretable-fer-aus",
        "patches": PATCHES,
        "files": EXPECTED,
    }
    write_golden("au_align", {"maps": maps, "loss": loss, "cams": cams, "metrics": metrics, "model": model}, meta)


if __name__ == "__main__":
    main()
