"""Name -> class registries for methods, datasets and backbones.

Entries are written here, explicitly, as "module:attribute" paths with a one-line description.
Nothing registers itself by import side effect (the most common "X is not in the registry"
failure in comparable projects), and listing names does not import torch, so
`fermix list methods` answers at once. A plugin is imported the first time it is asked for.

A dataset registry entry is an adapter (code that reads one format). A preset of an adapter is a
config file only: configs/dataset/<preset>.yaml with its own `name` (which names its runs) and
`adapter: <registered name>`; `dataset_adapter` resolves either.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fermix.errors import FermixError


def import_target(target: str) -> Any:
    """The object a "package.module:attribute" path names, imported on demand."""
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr)


@dataclass(frozen=True)
class Entry:
    target: str  # "package.module:Attribute"
    description: str


class Registry:
    def __init__(self, kind: str, entries: dict[str, Entry]) -> None:
        self.kind = kind
        self._entries = dict(entries)

    def register(self, name: str, target: str, description: str = "") -> None:
        """Add an entry from outside fermix (a user's own plugin package, or a test)."""
        if name in self._entries and self._entries[name].target != target:
            raise FermixError(f"{self.kind} `{name}` is already registered as {self._entries[name].target}")
        self._entries[name] = Entry(target, description)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def describe(self, name: str) -> str:
        return self._entry(name).description

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def _entry(self, name: str) -> Entry:
        if name not in self._entries:
            close = difflib.get_close_matches(str(name), self._entries, n=1)
            hint = f" Did you mean `{close[0]}`?" if close else ""
            raise FermixError(
                f"unknown {self.kind} `{name}`; known: {', '.join(self.names())}.{hint}"
            )
        return self._entries[name]

    def get(self, name: str) -> Any:
        """Import and return the registered object."""
        return import_target(self._entry(name).target)


METHODS = Registry(
    "method",
    {
        "erm": Entry("fermix.methods.erm:ERM", "backbone + linear head, cross-entropy (the plain baseline)"),
        "dmue": Entry("fermix.methods.dmue:DMUE", "latent distribution mining + pairwise uncertainty (DMUE)"),
        "multitask": Entry(
            "fermix.methods.multitask:Multitask", "AU + expression + VA from incomplete labels, teacher → students"
        ),
        "multitask_rnn": Entry(
            "fermix.methods.multitask.sequence:MultitaskRNN", "multitask's CNN-RNN: GRUs over a frozen multitask CNN"
        ),
        "au_align": Entry("fermix.methods.au_align:AUAlign", "layer attention aligned to action-unit heatmaps"),
        "iern": Entry(
            "fermix.methods.iern:IERN", "backdoor adjustment over a dataset-context confounder dictionary (IERN)"
        ),
        "mult": Entry("fermix.methods.mult:MulTMethod", "Multimodal Transformer over text / audio / vision (MulT)"),
        "causalmer": Entry(
            "fermix.methods.causalmer:CausalMER",
            "counterfactual removal of unimodal direct effects around MulT (CausalMER)",
        ),
    },
)

DATASETS = Registry(
    "dataset",
    {
        "imagefolder": Entry(
            "fermix.data.datasets.imagefolder:ImageFolderDataset",
            "one sub-folder per class, or a CSV manifest (path,label[,split,subject]); bring your own data",
        ),
        "synthetic": Entry(
            "fermix.data.synthetic.dataset:SyntheticDataset",
            "procedural faces with known AUs, VA, domains and label noise (the embedded default)",
        ),
        "mixbasic": Entry(
            "fermix.data.datasets.mixbasic:MixBasicDataset",
            "CK+ / MMI / Oulu-CASIA aligned faces, emotion_labels.pkl and the bias100/bias90 fold CSVs (IERN)",
        ),
        "rafdb": Entry(
            "fermix.data.datasets.rafdb:RAFDBDataset",
            "RAF-DB basic: list_patition_label.txt, labels 1..7, aligned or original images",
        ),
        "affectnet": Entry(
            "fermix.data.datasets.affectnet:AffectNetDataset",
            "AffectNet official training/validation CSVs, 7 or 8 classes, provided crops",
        ),
        "affwild2": Entry(
            "fermix.data.datasets.affwild2:AffWild2Dataset",
            "Aff-Wild2 per-video AU / EXPR / VA annotation files and cropped-aligned frames",
        ),
        "ckplus": Entry(
            "fermix.data.datasets.ckplus:CKPlusDataset",
            "CK+ raw layout (cohn-kanade-images + Emotion) for fermix preprocess",
        ),
        "oulu_casia": Entry(
            "fermix.data.datasets.oulu_casia:OuluCASIADataset",
            "Oulu-CASIA raw layout (VL/Strong) for fermix preprocess",
        ),
        "iemocap": Entry(
            "fermix.data.datasets.mult_pickle:IEMOCAPDataset",
            "IEMOCAP, MulT's pickles (iemocap_data[_noalign].pkl): text/audio/vision features, 4 binary emotions",
        ),
        "mosei": Entry(
            "fermix.data.datasets.mult_pickle:MOSEIDataset",
            "CMU-MOSEI, MulT's pickles (mosei_senti_data[_noalign].pkl): sentiment score and its 7 classes",
        ),
        "synthetic_mm": Entry(
            "fermix.data.synthetic_mm:SyntheticMMDataset",
            "generated multimodal sequences with a unimodal shortcut (interaction / additive regimes)",
        ),
    },
)

BACKBONES = Registry(
    "backbone",
    {
        "small_cnn": Entry("fermix.models.backbones:SmallCNN", "4-stage CNN for fast CPU runs (64 px faces)"),
        "resnet18": Entry("fermix.models.backbones:resnet18", "torchvision ResNet-18 trunk"),
        "resnet34": Entry("fermix.models.backbones:resnet34", "torchvision ResNet-34 trunk"),
        "resnet50": Entry("fermix.models.backbones:resnet50", "torchvision ResNet-50 trunk"),
        "resnet50_ibn": Entry("fermix.models.ibn:resnet50_ibn", "ResNet-50-IBN-a (DMUE's large backbone)"),
        "resnet50_ferplus": Entry(
            "fermix.models.ferplus:resnet50_ferplus", "FER+ caffe-style ResNet-50 (resnet50_ferplus_dag; multitask's)"
        ),
    },
)

REGISTRIES = {"methods": METHODS, "datasets": DATASETS, "backbones": BACKBONES}

# Legacy: these presets were DATASETS entries (all SyntheticDataset) until they became config files
# with `adapter: synthetic`. Checkpoints written before that store `dataset.name: synthetic_bias` and
# no `adapter`; this table lets them load, test, predict and resume. New presets never go here.
LEGACY_DATASET_ADAPTERS = {
    "synthetic_bias": "synthetic",
    "synthetic_noisy": "synthetic",
    "synthetic_partial": "synthetic",
    "synthetic_identity": "synthetic",
}


def dataset_adapter_name(dataset_cfg: Mapping[str, Any]) -> str:
    """The registered adapter that reads a dataset config: its `adapter` key, else its `name` (for a
    config without `adapter` written before presets had one, the adapter that preset had then)."""
    adapter = dataset_cfg.get("adapter")
    if adapter:
        return str(adapter)
    name = str(dataset_cfg["name"])
    return LEGACY_DATASET_ADAPTERS.get(name, name)


def dataset_adapter(dataset_cfg: Mapping[str, Any]) -> Any:
    """The adapter class of a dataset config (its `adapter`, else its `name`), imported on demand."""
    return DATASETS.get(dataset_adapter_name(dataset_cfg))


@dataclass(frozen=True)
class Preset:
    """configs/dataset/<name>.yaml naming another registered adapter; `summary` is its first comment line."""

    name: str
    adapter: str
    summary: str


def dataset_presets(config_dir: Path) -> dict[str, Preset]:
    """The dataset configs that are presets of an adapter (an `adapter:` key other than their own name),
    read from the files alone (no Hydra, no torch), so `fermix list datasets` can show them."""
    import yaml

    presets = {}
    for path in sorted((config_dir / "dataset").glob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        adapter = (yaml.safe_load(text) or {}).get("adapter")
        if adapter and adapter != path.stem:
            comments = [line[1:].strip() for line in text.splitlines() if line.startswith("#")]
            presets[path.stem] = Preset(path.stem, str(adapter), comments[0].rstrip(".") if comments else "")
    return presets
