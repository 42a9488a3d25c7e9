"""Import the IERN authors' released MixBasic checkpoints into a fermix checkpoint (spec §1, §5).

The release (donydchen/causal_emotion, `pretrained_models/mixbasic/fold_bias100v{1,2,3}`) is one
state dict per network, `<epoch>_net_<Name>.pth`, written by the original `save_networks` from the
unwrapped module. Each original key maps onto one fermix key by a prefix rule (the table below);
the only fermix tensor without a released counterpart is `centers` — the original keeps them in
its CenterLoss, which is not saved — so it is set from the dictionary Z, which training keeps
equal to them after every step (spec §1, sync rule). Inference never reads the centers.

Everything is checked against a model built for the target config: a file that is missing, a key
that has no place, a place that stays empty or a shape that differs ends in one sentence that
names the file and the original key.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from fermix.data.info import DataInfo
from fermix.data.label_spaces import get_label_space
from fermix.errors import FermixError

SOURCE_REPOSITORY = "github.com/donydchen/causal_emotion"
SOURCE_COMMIT = "8663158"
_MODULE_PREFIX = "module."  # DataParallel's wrapper, should a file have been saved through it
_BLOCK = re.compile(r"^(\d+)\.conv_block\.")  # original ResnetBlock body -> fermix ResidualBlock.body
_FOLD_DIR = re.compile(r"(bias\d+)(v\d+)", re.IGNORECASE)  # fold_bias100v1, as the release names its folders


@dataclass(frozen=True)
class Network:
    """One released file: its name and how its keys become fermix keys.

    A rule is (original prefix, fermix prefix); a prefix without a trailing dot names one whole key.
    `blocks` also renames residual blocks (`<i>.conv_block.<j>` -> `<i>.body.<j>`, same indices:
    conv, BN, ReLU, conv, BN in both).
    """

    name: str
    rules: tuple[tuple[str, str], ...]
    blocks: bool = False

    def fermix_key(self, key: str) -> str | None:
        for original, target in self.rules:
            if original.endswith("."):
                if not key.startswith(original):
                    continue
                rest = key[len(original) :]
            elif key == original:
                rest = ""
            else:
                continue
            return target + (_BLOCK.sub(r"\1.body.", rest) if self.blocks else rest)
        return None

    def original_key(self, key: str) -> str | None:
        for original, target in self.rules:
            if target.endswith(".") and key.startswith(target):
                rest = key[len(target) :]
                return original + (re.sub(r"^(\d+)\.body\.", r"\1.conv_block.", rest) if self.blocks else rest)
            if key == target:
                return original
        return None


# Base = nn.Sequential(*resnet.children()[:-2], Conv2d(2048, C, 1)): 0 conv1, 1 bn1, 2 relu,
# 3 maxpool, 4-7 layer1-4, 8 the projection. fermix's stage 0 is (conv1, bn1, relu, maxpool, layer1).
NETWORKS: tuple[Network, ...] = (
    Network(
        "Base",
        (
            ("0.", "backbone.stages.0.0."),
            ("1.", "backbone.stages.0.1."),
            ("4.", "backbone.stages.0.4."),
            ("5.", "backbone.stages.1."),
            ("6.", "backbone.stages.2."),
            ("7.", "backbone.stages.3."),
            ("8.", "proj."),
        ),
    ),
    Network("EmoGen", (("feat_encoder.", "emo_gen.layers."),), blocks=True),
    Network("ConGen", (("feat_encoder.", "con_gen.layers."),), blocks=True),
    Network("Recons", (("feat_decoder.", "fuser.layers."),), blocks=True),
    Network("EmoDis", (("model.", "emo_dis.layers."),)),
    Network("ConDis", (("model.", "con_dis.layers."),)),
    Network("Cnfnd", (("mem_tensors", "dictionary"),)),
    Network("Cls", (("fc.", "classifier.fc."),)),
)
DERIVED = ("centers",)  # fermix keys the release does not hold


def release_file(src_dir: str | Path, epoch: str | int, name: str) -> Path:
    return Path(src_dir) / f"{epoch}_net_{name}.pth"


def published_reference() -> dict[str, Tensor]:
    """Keys and shapes of the published model (ResNet-50, C=512, 224 px, 6 classes, 3 strata), without weights."""
    from fermix.methods.iern.model import IERN, IERNConfig

    info = DataInfo(get_label_space("mixbasic6"), frozenset({"image", "expr", "domain"}), image_size=224, num_domains=3)
    with torch.device("meta"):  # shapes only: no memory, no initialisation
        model = IERN(IERNConfig(), info, {"name": "resnet50", "pretrained": None})
    return model.state_dict()


def convert_released(
    src_dir: str | Path, epoch: str | int = "160", reference: Mapping[str, Tensor] | None = None
) -> dict[str, Tensor]:
    """The fermix IERN state dict (keys without the engine's `method.` prefix) of one released model.

    `reference` is the state dict (or meta-device state dict) of the fermix model the weights are
    for; by default the published architecture.
    """
    src = Path(src_dir)
    if not src.is_dir():
        raise FermixError(f"{src} is not a folder holding the released IERN files ({epoch}_net_<Name>.pth)")
    ref = dict(reference) if reference is not None else published_reference()
    out: dict[str, Tensor] = {}
    for net in NETWORKS:
        path = release_file(src, epoch, net.name)
        for raw_key, value in _load(path, epoch).items():
            key = raw_key.removeprefix(_MODULE_PREFIX)
            target = net.fermix_key(key)
            if target is None or target not in ref or target in out:
                raise FermixError(f"{path.name} holds `{raw_key}`, which has no place in the fermix IERN model")
            if not isinstance(value, Tensor):
                raise FermixError(f"{path.name} holds a {type(value).__name__} under `{raw_key}`, not a tensor")
            expected = tuple(ref[target].shape)
            if tuple(value.shape) != expected:
                raise FermixError(
                    f"{path.name}: `{key}` has shape {list(value.shape)} where the fermix model expects "
                    f"{list(expected)} (a different backbone, width or number of classes or strata?)"
                )
            value = value.detach().to(dtype=ref[target].dtype).contiguous()
            if value.untyped_storage().nbytes() != value.numel() * value.element_size():
                value = value.clone()  # a view into a larger storage (Z was a view of the centers)
            out[target] = value
    missing = [k for k in ref if k not in out and k not in DERIVED]
    if missing:
        file, key = _origin(missing[0], epoch)
        more = f" and {len(missing) - 1} other keys" if len(missing) > 1 else ""
        raise FermixError(f"{file} lacks `{key}`{more} that the fermix IERN model needs")
    dictionary = out["dictionary"]
    # The centers are not released; training keeps Z = centers.view(K, C, S, S) after every step.
    out["centers"] = dictionary.reshape(dictionary.shape[0], -1).to(dtype=ref["centers"].dtype).clone()
    if tuple(out["centers"].shape) != tuple(ref["centers"].shape):
        raise FermixError(
            f"the released dictionary {list(dictionary.shape)} does not fit centers {list(ref['centers'].shape)}"
        )
    return {k: out[k] for k in ref}


def _load(path: Path, epoch: str | int) -> Mapping[str, Any]:
    if not path.is_file():
        found = sorted(p.name.split("_net_")[0] for p in path.parent.glob("*_net_Base.pth"))
        hint = f" (this folder has epoch {', '.join(found)})" if found else ""
        names = ", ".join(n.name for n in NETWORKS)
        raise FermixError(
            f"{path} is missing: the IERN release has one {epoch}_net_<Name>.pth per network ({names}){hint}"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise FermixError(f"{path} cannot be read as a PyTorch state dict ({exc.__class__.__name__})") from exc
    if not isinstance(state, Mapping):
        raise FermixError(f"{path} holds a {type(state).__name__}, not a state dict")
    return state


def _origin(fermix_key: str, epoch: str | int) -> tuple[str, str]:
    """(file name, original key) a fermix key should have come from."""
    for net in NETWORKS:
        original = net.original_key(fermix_key)
        if original is not None:
            return release_file(".", epoch, net.name).name, original
    return "the release", fermix_key


# --- a complete fermix checkpoint ---------------------------------------------------------------
def fold_from_folder(src_dir: str | Path) -> tuple[str, str] | None:
    """(fold, bias) from a release folder named like `fold_bias100v1`, else None."""
    match = _FOLD_DIR.search(Path(src_dir).resolve().name)
    return (match.group(2).lower(), match.group(1).lower()) if match else None


def write_checkpoint(
    src_dir: str | Path,
    out_path: str | Path,
    epoch: str | int = "160",
    fold: str | None = None,
    bias: str | None = None,
    overrides: Sequence[str] = (),
) -> dict[str, Any]:
    """Write a fermix checkpoint that `fermix test ckpt=...` evaluates on the MixBasic fold it was trained on.

    The fold and bias default to the release folder's name (`fold_bias100v1`), else v1 / bias100;
    `overrides` are further `fermix train` overrides (e.g. a different `dataset.root`). The backbone
    is rebuilt without pretrained weights, since every weight comes from the release. Returns the
    checkpoint's `fermix` section.
    """
    from fermix.data.datasets.mixbasic import normalise_bias, normalise_fold
    from fermix.engine.imported import compose_train_config, file_sha256, reference_state, write_imported_checkpoint
    from fermix.registry import dataset_adapter

    src, out = Path(src_dir), Path(out_path)
    guessed = fold_from_folder(src) or ("v1", "bias100")
    fold = normalise_fold(fold if fold is not None else guessed[0])
    bias = normalise_bias(bias if bias is not None else guessed[1])
    config = compose_train_config(
        [
            "experiment=iern_mixbasic",  # method=iern dataset=mixbasic backbone=resnet50 and the paper's recipe
            f"dataset.fold={fold}",
            f"dataset.bias={bias}",
            *overrides,
            "backbone.pretrained=null",
        ],
        what="IERN",
    )
    adapter = dataset_adapter(config["dataset"])
    info = DataInfo(
        label_space=adapter.label_space,
        keys=frozenset(adapter.keys),
        image_size=int(config["data"]["image_size"]),
        num_domains=int(getattr(adapter, "num_domains", 1)),
    )
    reference = reference_state(config, info)
    state = convert_released(src, epoch, reference=reference)

    epoch_text = str(epoch)
    last_epoch = int(epoch_text) - 1 if epoch_text.isdigit() and int(epoch_text) > 0 else 0  # fermix counts from 0
    files = {net.name: release_file(src, epoch, net.name) for net in NETWORKS}
    imported_from = {
        "repository": SOURCE_REPOSITORY,
        "commit": SOURCE_COMMIT,
        "folder": str(src.resolve()),
        "epoch": epoch_text,
        "fold": fold,
        "bias": bias,
        "files": {name: {"file": p.name, "sha256": file_sha256(p)} for name, p in files.items()},
        "centers": "not in the release; set from the dictionary, centers = Z.view(K, -1), as training syncs",
    }
    return write_imported_checkpoint(out, config, info, state, imported_from, epoch=last_epoch)
