"""Importing the authors' released IERN checkpoints (spec iern.md §1, §5; convert.py).

The fake releases are written in the ORIGINAL layout: the test builds modules shaped like the
original code (nn.Sequential ResNet trunk + 1×1 conv, `feat_encoder`/`feat_decoder` with
`conv_block` residual blocks, `model` discriminators, the `mem_tensors` buffer, `fc`) and saves
their state dicts as `<epoch>_net_<Name>.pth`, as `save_networks` did. The key correspondence is
checked through a table written here, independently of convert.py's.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import torch
import torchvision
from torch import Tensor, nn

from fermix.data.info import DataInfo
from fermix.data.label_spaces import get_label_space
from fermix.engine.build import build_method
from fermix.engine.checkpoint import load_checkpoint
from fermix.errors import FermixError
from fermix.methods.iern import IERN, IERNConfig
from fermix.methods.iern.convert import convert_released, published_reference, write_checkpoint

EPOCH = "160"
K, E = 3, 6
SMALL_C, SMALL_PX = 64, 112  # the small release: ResNet-18 trunk (same Sequential layout), C=64, 112 px -> S=4


# --- modules in the original code's structure --------------------------------------------------
class OrigResBlock(nn.Module):
    """pix2pix ResnetBlock as IERN configures it: zero padding, BatchNorm, no dropout, no conv bias."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(True),
            nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c),
        )  # fmt: skip

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv_block(x)


class OrigEncoder(nn.Module):  # FeatEncoderNet
    def __init__(self, c: int, n: int = 2) -> None:
        super().__init__()
        self.feat_encoder = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), *(OrigResBlock(c) for _ in range(n)))

    def forward(self, x: Tensor) -> Tensor:
        return self.feat_encoder(x)


class OrigDecoder(nn.Module):  # FeatDecoderNet (input 2C)
    def __init__(self, c: int, n: int = 3) -> None:
        super().__init__()
        self.feat_decoder = nn.Sequential(nn.Conv2d(2 * c, c, 3, padding=1), *(OrigResBlock(c) for _ in range(n)))

    def forward(self, x1: Tensor, x2: Tensor) -> Tensor:
        return self.feat_decoder(torch.cat((x1, x2), 1))


class OrigDis(nn.Module):  # FeatDisNet
    def __init__(self, c: int, n_out: int, s: int = 7, n: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(c, c, 4, stride=2, padding=1), nn.LeakyReLU(0.01)]
        for _ in range(n):
            layers += [nn.Conv2d(c, c // 2, 1), nn.LeakyReLU(0.01)]
            c //= 2
        layers.append(nn.Conv2d(c, n_out, s // 2, bias=False))
        self.model = nn.Sequential(*layers)


class OrigCnfnd(nn.Module):  # ConfounderNet
    def __init__(self, c: int, s: int = 7, k: int = K) -> None:
        super().__init__()
        self.register_buffer("mem_tensors", torch.zeros(k, c, s, s))


class OrigCls(nn.Module):  # ClassifierNet
    def __init__(self, n_emo: int, c: int) -> None:
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(c, n_emo)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(torch.flatten(self.avgpool(x), 1))


def orig_networks(arch: str, c: int, s: int = 7) -> dict[str, nn.Module]:
    trunk = getattr(torchvision.models, arch)(weights=None)
    width = 2048 if arch == "resnet50" else 512
    return {
        "Base": nn.Sequential(*list(trunk.children())[:-2], nn.Conv2d(width, c, 1)),
        "EmoGen": OrigEncoder(c),
        "ConGen": OrigEncoder(c),
        "Recons": OrigDecoder(c),
        "EmoDis": OrigDis(c, E, s),
        "ConDis": OrigDis(c, K, s),
        "Cnfnd": OrigCnfnd(c, s),
        "Cls": OrigCls(E, c),
    }


def original_forward_test(nets: dict[str, nn.Module], x: Tensor) -> tuple[Tensor, Tensor]:
    """The original forward_Test: f_b, g_e, then f_c(g_r(e, Z_k)) for each k, averaged."""
    e = nets["EmoGen"](nets["Base"](x))
    z = nets["Cnfnd"].mem_tensors
    per_k = torch.stack([nets["Cls"](nets["Recons"](e, z[k].expand(e.size(0), -1, -1, -1))) for k in range(K)])
    return per_k.mean(0), per_k


def randomise(state: dict[str, Tensor], seed: int) -> None:
    """Distinct values everywhere (BN statistics and counters too), so a misplaced tensor shows."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for key, t in state.items():
            if key.endswith("num_batches_tracked"):
                t.fill_(int(torch.randint(1, 10**6, (1,), generator=g)))
            elif key.endswith("running_var"):
                t.uniform_(0.5, 1.5, generator=g)
            elif t.dim() == 1:  # biases, BN weights and means
                t.uniform_(-0.1, 0.1, generator=g).add_(1.0 if key.endswith("weight") else 0.0)
            else:  # He-scaled uniform on the fan-in
                bound = (6.0 / max(t[0].numel(), 1)) ** 0.5
                t.uniform_(-bound, bound, generator=g)


def write_release(states: dict[str, dict[str, Tensor]], folder: Path, legacy: bool = False, prefix: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, state in states.items():
        state = {prefix + k: v for k, v in state.items()}
        torch.save(state, folder / f"{EPOCH}_net_{name}.pth", _use_new_zipfile_serialization=not legacy)
    return folder


# --- the independent key table: original (file, key) -> fermix key ------------------------------
_BASE = {"0": "backbone.stages.0.0", "1": "backbone.stages.0.1", "4": "backbone.stages.0.4",
         "5": "backbone.stages.1", "6": "backbone.stages.2", "7": "backbone.stages.3", "8": "proj"}  # fmt: skip
_HEADS = {"EmoGen": "emo_gen.layers", "ConGen": "con_gen.layers", "Recons": "fuser.layers",
          "EmoDis": "emo_dis.layers", "ConDis": "con_dis.layers"}  # fmt: skip


def expected_fermix_key(name: str, key: str) -> str:
    if name == "Base":
        head, rest = key.split(".", 1)
        return f"{_BASE[head]}.{rest}"
    if name == "Cnfnd":
        assert key == "mem_tensors"
        return "dictionary"
    if name == "Cls":
        return f"classifier.{key}"
    _, rest = key.split(".", 1)  # drop feat_encoder / feat_decoder / model
    return f"{_HEADS[name]}.{re.sub(r'conv_block', 'body', rest)}"


SPOT_CHECKS = (  # (fermix key, released file, original key) at the published size
    ("backbone.stages.0.0.weight", "Base", "0.weight"),  # conv1
    ("backbone.stages.0.1.running_mean", "Base", "1.running_mean"),  # bn1
    ("backbone.stages.0.4.0.downsample.1.running_var", "Base", "4.0.downsample.1.running_var"),  # layer1
    ("backbone.stages.3.2.conv3.weight", "Base", "7.2.conv3.weight"),  # layer4
    ("proj.weight", "Base", "8.weight"),
    ("proj.bias", "Base", "8.bias"),
    ("emo_gen.layers.2.body.4.running_var", "EmoGen", "feat_encoder.2.conv_block.4.running_var"),
    ("con_gen.layers.0.weight", "ConGen", "feat_encoder.0.weight"),
    ("fuser.layers.3.body.3.weight", "Recons", "feat_decoder.3.conv_block.3.weight"),
    ("emo_dis.layers.0.bias", "EmoDis", "model.0.bias"),
    ("con_dis.layers.8.weight", "ConDis", "model.8.weight"),
    ("dictionary", "Cnfnd", "mem_tensors"),
    ("classifier.fc.bias", "Cls", "fc.bias"),
)


def _info(image_size: int = 224) -> DataInfo:
    return DataInfo(get_label_space("mixbasic6"), frozenset({"image", "expr", "domain"}), image_size, num_domains=K)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A small release (ResNet-18, C=64, 112 px), its original-style networks and a fermix model of that size."""
    torch.manual_seed(0)
    nets = orig_networks("resnet18", SMALL_C, s=SMALL_PX // 28)
    for i, net in enumerate(nets.values()):
        randomise(net.state_dict(), seed=i)
        net.eval()
    nets["Cnfnd"].mem_tensors.uniform_(-1.0, 1.0)  # context prototypes of feature scale
    folder = write_release(
        {n: m.state_dict() for n, m in nets.items()}, tmp_path_factory.mktemp("rel") / "fold_bias90v2"
    )
    model = IERN(IERNConfig(channels=SMALL_C), _info(SMALL_PX), {"name": "resnet18", "pretrained": None})
    return {"nets": nets, "folder": folder, "model": model, "reference": model.state_dict()}


def _copy(folder: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(folder, tmp_path / folder.name))


# --- tests -------------------------------------------------------------------------------------
def test_full_size_release_fills_every_fermix_key_from_its_original_key(tmp_path):
    """Published size (ResNet-50, C=512, S=7): every fermix key filled, each from the right original tensor."""
    with torch.device("meta"):
        shapes = {n: m.state_dict() for n, m in orig_networks("resnet50", 512).items()}
    states = {n: {k: torch.empty(v.shape, dtype=v.dtype) for k, v in s.items()} for n, s in shapes.items()}
    for i, state in enumerate(states.values()):
        randomise(state, seed=10 + i)
    converted = convert_released(write_release(states, tmp_path / "rel"), EPOCH)

    reference = published_reference()
    assert list(converted) == list(reference)
    for key, value in converted.items():
        assert value.shape == reference[key].shape and value.dtype == reference[key].dtype, key
    filled = set()
    for name, state in states.items():
        for key, value in state.items():
            target = expected_fermix_key(name, key)
            assert torch.equal(converted[target], value), (name, key, target)
            filled.add(target)
    assert filled | {"centers"} == set(converted)
    for fermix_key, name, key in SPOT_CHECKS:  # the places the brief names, spelled out
        assert torch.equal(converted[fermix_key], states[name][key]), (fermix_key, name, key)
    assert converted["proj.weight"].shape == (512, 2048, 1, 1)  # the 1×1 conv 2048 -> C
    assert converted["con_dis.layers.8.weight"].shape == (K, 64, 3, 3)  # final ⌊S/2⌋ conv -> K
    assert torch.equal(converted["centers"], states["Cnfnd"]["mem_tensors"].view(K, -1))


def test_converted_model_predicts_like_the_original_forward(small):
    converted = convert_released(small["folder"], EPOCH, reference=small["reference"])
    model = small["model"]
    model.load_state_dict(converted, strict=True)
    model.eval()
    x = torch.randn(2, 3, SMALL_PX, SMALL_PX, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ours = model.predict({"image": x})
        theirs, per_k = original_forward_test(small["nets"], x)
    assert theirs.abs().max() > 1e-3  # a non-degenerate output
    torch.testing.assert_close(ours["expr_logits"], theirs, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(ours["stratum_logits"], per_k.transpose(0, 1), rtol=1e-4, atol=1e-5)


def test_files_saved_through_dataparallel_or_in_the_legacy_format_convert_the_same(small, tmp_path):
    """torch 1.4 wrote the pre-zip format; a `module.` prefix (DataParallel) is tolerated."""
    states = {n: m.state_dict() for n, m in small["nets"].items()}
    folder = write_release(states, tmp_path / "legacy", legacy=True, prefix="module.")
    plain = convert_released(small["folder"], EPOCH, reference=small["reference"])
    legacy = convert_released(folder, EPOCH, reference=small["reference"])
    assert list(legacy) == list(plain)
    assert all(torch.equal(legacy[k], plain[k]) for k in plain)


def test_missing_file_is_one_sentence_naming_it(small, tmp_path):
    folder = _copy(small["folder"], tmp_path)
    (folder / f"{EPOCH}_net_Recons.pth").unlink()
    with pytest.raises(FermixError, match=r"160_net_Recons\.pth is missing") as info:
        convert_released(folder, EPOCH, reference=small["reference"])
    assert "\n" not in str(info.value)
    with pytest.raises(FermixError, match=r"150_net_Base\.pth is missing.*has epoch 160"):
        convert_released(small["folder"], "150", reference=small["reference"])


def test_wrong_shape_key_is_one_sentence_naming_file_and_key(small, tmp_path):
    folder = _copy(small["folder"], tmp_path)
    path = folder / f"{EPOCH}_net_Cls.pth"
    state = torch.load(path, weights_only=True)
    state["fc.weight"] = torch.zeros(7, SMALL_C)  # a 7-class head
    torch.save(state, path)
    with pytest.raises(FermixError, match=r"160_net_Cls\.pth: `fc\.weight` has shape \[7, 64\].*\[6, 64\]") as info:
        convert_released(folder, EPOCH, reference=small["reference"])
    assert "\n" not in str(info.value)


def test_unexpected_and_missing_keys_name_file_and_key(small, tmp_path):
    folder = _copy(small["folder"], tmp_path)
    base = folder / f"{EPOCH}_net_Base.pth"
    state = torch.load(base, weights_only=True)
    torch.save({**state, "9.weight": torch.zeros(1)}, base)
    with pytest.raises(FermixError, match=r"160_net_Base\.pth holds `9\.weight`"):
        convert_released(folder, EPOCH, reference=small["reference"])
    torch.save(state, base)

    gen = folder / f"{EPOCH}_net_EmoGen.pth"
    state = torch.load(gen, weights_only=True)
    del state["feat_encoder.1.conv_block.1.running_var"]
    torch.save(state, gen)
    with pytest.raises(FermixError, match=r"160_net_EmoGen\.pth lacks `feat_encoder\.1\.conv_block\.1\.running_var`"):
        convert_released(folder, EPOCH, reference=small["reference"])


def test_written_checkpoint_is_accepted_and_rebuilt_as_fermix_test_does(small, tmp_path):
    out = tmp_path / "imported" / "iern_v2.ckpt"
    write_checkpoint(
        small["folder"],
        out,
        EPOCH,
        overrides=["backbone=resnet18", f"method.channels={SMALL_C}", f"data.image_size={SMALL_PX}"],
    )
    ckpt = load_checkpoint(out)
    meta = ckpt["fermix"]
    assert (meta["method"], meta["dataset"], meta["epoch"], meta["global_step"]) == ("iern", "mixbasic", 159, 0)
    cfg = meta["config"]
    assert "hydra" not in cfg
    assert (cfg["dataset"]["fold"], cfg["dataset"]["bias"]) == ("v2", "bias90")  # from the folder name
    assert cfg["backbone"] == {"name": "resnet18", "pretrained": None, "last_stride": 2}
    assert meta["label_space"]["classes"] == ["anger", "disgust", "fear", "happiness", "sadness", "surprise"]
    assert meta["data_info"]["num_domains"] == K and meta["data_info"]["image_size"] == SMALL_PX
    assert meta["preprocessing"] == {  # the recipe (experiment/iern_mixbasic.yaml) is composed in
        "image_size": SMALL_PX, "resize": 256, "mean": [0.5] * 3, "std": [0.5] * 3, "interpolation": "bicubic"
    }  # fmt: skip
    imported = meta["provenance"]["imported_from"]
    assert imported["epoch"] == EPOCH and len(imported["files"]) == 8
    assert all(k.startswith("method.") for k in ckpt["state_dict"])

    # the code path of engine/testing.py run_test
    method = build_method(cfg["method"], cfg["backbone"], DataInfo.from_dict(meta["data_info"]))
    method.load_state_dict({k.removeprefix("method."): v for k, v in ckpt["state_dict"].items()})
    method.eval()
    x = torch.randn(1, 3, SMALL_PX, SMALL_PX, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        theirs, _ = original_forward_test(small["nets"], x)
        torch.testing.assert_close(method.predict({"image": x})["expr_logits"], theirs, rtol=1e-4, atol=1e-5)
