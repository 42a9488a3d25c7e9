"""`dmue`: latent distribution mining + pairwise uncertainty (She et al., CVPR 2021; spec §1-2).

The backbone is shared up to layer3; layer4 is copied C+1 times. Auxiliary branch k learns the
other C−1 classes and never sees a class-k sample; run on the class-k samples, it says what
else they look like — their latent label distribution, a soft target for the target branch.
The pairwise uncertainty score s (how well a sample's features agree with its label, judged by
its cosine similarity to each class in the batch) scales the target logits, so ambiguous or
mislabelled samples push less on the one-hot loss. Inference keeps only the target branch.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset, Sampler

from fermix.data.info import DataInfo
from fermix.data.samplers import ClassBalancedSampler
from fermix.errors import FermixError
from fermix.methods.base import Batch, Method, MethodConfig
from fermix.methods.dmue import convert
from fermix.methods.dmue.export import DMUETarget
from fermix.methods.dmue.losses import (
    assemble,
    aux_loss,
    ramp_down,
    ramp_up,
    remap_labels,
    soft_labels,
    soft_loss,
    sp_loss,
)
from fermix.methods.dmue.uncertainty import PairwiseUncertainty
from fermix.models.backbones import Backbone, build_backbone

MIN_PER_CLASS = 2  # the batch-validity rule: every class at least twice


class Pooling(StrEnum):
    gap = "gap"
    gem = "gem"


class SpGram(StrEnum):
    logits = "logits"
    features = "features"


class Sampling(StrEnum):
    balanced = "balanced"
    shuffle = "shuffle"


class Stem(StrEnum):
    torchvision = "torchvision"
    msceleb = "msceleb"


@dataclass
class DMUEConfig(MethodConfig):
    temperature: float = 1.2  # T of softmax(a/T) for the latent distribution (T > 1 flattens)
    soft_weight: float = 0.5  # w
    sp_weight: float = 1000.0  # γ
    ramp_alpha: float = 6.0  # α of the ramps, in epochs
    dropout: float = 0.5  # before the BN-neck (not in the latent-distribution pass)
    bnneck: bool | None = None  # None = the authors' choice: on, off for resnet50_ibn
    shared_bnneck: bool = True  # one BN-neck for all C+1 heads and the latent pass, as the original
    pooling: Pooling = Pooling.gap  # gap | gem (p = gem_p, fixed)
    gem_p: float = 3.0
    train_ue_head: bool = False  # false = the original code (MLP never stepped); true = the paper's learnt MLP
    train_bnneck_weight: bool = False  # false = the original code (BN-neck scale never stepped); true = trained
    sp_gram: SpGram = SpGram.logits  # logits = the original (aux Gram from the heads' logits) | features (opt-in)
    classifier_lr_scale: float = 10.0  # LR of the heads relative to optim.lr (paper: 1e-3 vs 1e-4)
    sampler: Sampling = Sampling.balanced  # balanced (class-balanced, with replacement) | shuffle
    stem: Stem = Stem.torchvision  # torchvision | msceleb (no stem ReLU, 2×2 max-pool: the authors' ResNets)
    pretrained: str | None = None  # the authors' MS-Celeb checkpoint or a DMUE snapshot (convert.py)
    legacy_eval_after_steps: int = 0  # >0: from this step of each epoch on, train in eval mode (original bug)


class GeM(nn.Module):
    """Generalised-mean pooling with a fixed exponent p."""

    def __init__(self, p: float = 3.0, eps: float = 1e-6) -> None:
        super().__init__()
        self.p, self.eps = p, eps

    def forward(self, x: Tensor) -> Tensor:
        return F.adaptive_avg_pool2d(x.clamp(min=self.eps).pow(self.p), 1).pow(1.0 / self.p)


def use_msceleb_stem(backbone: Backbone) -> None:
    """The stem of the authors' MS-Celeb ResNets: conv7×7/2, BN, no ReLU, max-pool 2×2/2."""
    stem = backbone.stages[0]
    if not (
        isinstance(stem, nn.Sequential)
        and len(stem) == 5
        and isinstance(stem[2], nn.ReLU)
        and isinstance(stem[3], nn.MaxPool2d)
    ):
        raise FermixError("method.stem=msceleb needs a ResNet backbone (resnet18, resnet34, resnet50, resnet50_ibn)")
    stem[2] = nn.Identity()
    stem[3] = nn.MaxPool2d(kernel_size=2, stride=2, padding=0)


def batch_is_valid(labels: Tensor, num_classes: int) -> bool:
    """Every class present at least twice (class means need J_k, the aux heads ≥ 2 samples)."""
    if labels.numel() == 0:
        return False
    return int(torch.bincount(labels, minlength=num_classes).min()) >= MIN_PER_CLASS


def _bnneck(dim: int) -> nn.BatchNorm1d:
    neck = nn.BatchNorm1d(dim)
    neck.bias.requires_grad_(False)  # β frozen by design (the BNNeck of strong re-id baselines)
    return neck


class DMUE(Method):
    name = "dmue"
    weight_files = ("pretrained",)  # fermix test: the checkpoint holds every weight; the file is not read again
    Config = DMUEConfig
    requires = frozenset({"image", "expr"})
    tasks = ("expr",)

    def __init__(self, config: DMUEConfig, data_info: DataInfo, backbone: Mapping[str, Any]) -> None:
        super().__init__(config, data_info, backbone)
        self._check(config)
        c = self.num_classes = data_info.num_classes
        if c < 2:
            raise FermixError(f"method dmue needs at least 2 classes, the label space has {c}")
        net = build_backbone(backbone)
        if config.stem == "msceleb":
            use_msceleb_stem(net)
        pretrained = convert.read_state_dict(config.pretrained) if config.pretrained else None
        if pretrained is not None and convert.layout(pretrained) == "msceleb":
            self._load_backbone(net, convert.msceleb_to_backbone(pretrained), config.pretrained)
        self.channels = list(net.channels)
        self.feature_dim = net.out_channels
        self.trunk = net.trunk(3)
        self.branches = nn.ModuleList(net.copy_stage(3) for _ in range(c + 1))  # 0..C−1 auxiliary, C target
        self.pool: nn.Module = GeM(config.gem_p) if config.pooling == "gem" else nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(config.dropout)
        use_neck = config.bnneck if config.bnneck is not None else backbone.get("name") != "resnet50_ibn"
        self.neck: nn.Module = _bnneck(self.feature_dim) if use_neck else nn.Identity()
        if use_neck and not config.shared_bnneck:
            self.neck_target: nn.Module = _bnneck(self.feature_dim)
        self.classifiers = nn.ModuleList(
            [nn.Linear(self.feature_dim, c - 1, bias=False) for _ in range(c)]
            + [nn.Linear(self.feature_dim, c, bias=False)]
        )
        for head in self.classifiers:
            nn.init.normal_(head.weight, std=0.001)
        self.ue = PairwiseUncertainty(c)
        if pretrained is not None and convert.layout(pretrained) != "msceleb":
            self._load_snapshot(pretrained, config.pretrained)
        # Parameters the configuration does not train get no gradient (the original's optimizer
        # simply left them out); gradients still flow through them to the features.
        self.ue.requires_grad_(config.train_ue_head)
        for neck in self._necks():
            neck.weight.requires_grad_(config.train_bnneck_weight)
        self._epoch = 0
        self._epoch_steps = 0

    @staticmethod
    def _check(config: DMUEConfig) -> None:
        """Ranges; types and closed choices are the Config's (checked by make_config and Hydra)."""
        if config.temperature <= 0:
            raise FermixError(f"method.temperature must be positive, not {config.temperature}")
        if not 0 <= config.dropout < 1:
            raise FermixError(f"method.dropout must be in [0, 1), not {config.dropout}")
        if config.gem_p <= 0:
            raise FermixError(f"method.gem_p must be positive, not {config.gem_p}")
        if (steps := config.legacy_eval_after_steps) < 0:
            raise FermixError(f"method.legacy_eval_after_steps must be 0 (off) or positive, not {steps}")

    def _necks(self) -> list[nn.BatchNorm1d]:
        return [m for m in (self.neck, getattr(self, "neck_target", None)) if isinstance(m, nn.BatchNorm1d)]

    @property
    def target_neck(self) -> nn.Module:
        return getattr(self, "neck_target", self.neck)

    @staticmethod
    def _load_backbone(net: Backbone, state: convert.State, path: str) -> None:
        try:
            missing, _ = net.load_state_dict(state, strict=False)
        except RuntimeError as exc:  # shapes of another architecture
            raise FermixError(f"the weights in {path} do not fit backbone {type(net).__name__}") from exc
        if missing:
            raise FermixError(f"{path} lacks {len(missing)} backbone weights (first: {missing[0]}); is it a ResNet?")

    def _load_snapshot(self, state: convert.State, path: str) -> None:
        kind = convert.layout(state)
        if kind != "dmue":
            raise FermixError(
                f"{path} is neither the authors' MS-Celeb checkpoint (feat_net.*) nor a DMUE training snapshot "
                f"(base.layer4_<k>.*); target-only weights load into the exported model"
            )
        try:
            self.load_state_dict(convert.dmue_to_method(state))
        except RuntimeError as exc:
            raise FermixError(
                f"the DMUE snapshot {path} does not fit this model ({self.num_classes} classes, "
                f"backbone and neck as configured)"
            ) from exc

    # --- forward passes -------------------------------------------------------------------
    def _pool(self, x: Tensor) -> Tensor:
        return self.pool(x).flatten(1)

    def forward_from_layer3(self, layer3: Tensor, labels: Tensor) -> dict[str, Any]:
        """The training graph (spec §1.2) from the shared layer3 map: auxiliary, target and
        latent-distribution passes, then the uncertainty score. The batch must be valid (every
        class at least twice; see batch_is_valid)."""
        c = self.num_classes
        aux_logits, aux_features, aux_targets, subsets = [], [], [], []
        for k in range(c):  # auxiliary pass: branch k on I_k = {y ≠ k}, labels remapped to C−1 classes
            idx = (labels != k).nonzero().squeeze(1)
            feats = self.neck(self.dropout(self._pool(self.branches[k](layer3[idx]))))
            aux_features.append(feats)
            aux_logits.append(self.classifiers[k](feats))
            aux_targets.append(remap_labels(labels[idx], k))
            subsets.append(idx)
        raw = self._pool(self.branches[c](layer3))  # target pass: all samples
        target_features = self.target_neck(self.dropout(raw))
        logits = self.classifiers[c](target_features)
        parts, where = [], []
        for k in range(c):  # latent pass: branch k on J_k = {y = k}; no dropout
            jdx = (labels == k).nonzero().squeeze(1)
            parts.append(self.classifiers[k](self.neck(self._pool(self.branches[k](layer3[jdx])))))
            where.append(jdx)
        latent = torch.cat(parts)[torch.argsort(torch.cat(where))]  # back in batch order
        score, m_hat = self.ue(raw, labels)
        return {
            "aux_logits": aux_logits,
            "aux_features": aux_features,
            "aux_targets": aux_targets,
            "subsets": subsets,
            "raw_features": raw,
            "target_features": target_features,
            "logits": logits,
            "latent_logits": latent,
            "score": score,
            "m_hat": m_hat,
        }

    def losses(self, out: dict[str, Any], labels: Tensor) -> dict[str, Tensor]:
        """The four unweighted terms of spec §2.2. The SP term compares each auxiliary branch's Gram
        matrix with the target's BN-neck feature Gram matrix. By default (`sp_gram=logits`) the
        auxiliary side is the heads' *logits*, as the original computes it (models/make_model.py);
        `sp_gram=features` uses the auxiliary BN-neck features (Tung & Mori's features on both sides)."""
        soft = soft_labels(out["latent_logits"], labels, self.config.temperature)
        aux_side = out["aux_features"] if self.config.sp_gram == "features" else out["aux_logits"]
        return {
            "ce": F.cross_entropy(out["score"] * out["logits"], labels),
            "soft": soft_loss(out["logits"], labels, soft),
            "sp": sp_loss(aux_side, out["target_features"], out["subsets"]),
            "aux": aux_loss(out["aux_logits"], out["aux_targets"]),
        }

    def training_step(self, batch: Batch) -> dict[str, Tensor]:
        image, labels = batch["image"], batch["expr"]
        labelled = labels >= 0
        if not bool(labelled.all()):
            image, labels = image[labelled], labels[labelled]
        if not batch_is_valid(labels, self.num_classes):
            return {}  # the engine skips the batch and counts it (train/skipped)
        steps = self.config.legacy_eval_after_steps
        if steps and self._epoch_steps >= steps:
            self.eval()  # the original evaluated every `steps` iterations and never switched back
        self._epoch_steps += 1
        out = self.forward_from_layer3(self.trunk(image), labels)
        cfg = self.config
        terms = assemble(
            **self.losses(out, labels),
            up=ramp_up(self._epoch, cfg.ramp_alpha),
            down=ramp_down(self._epoch, cfg.ramp_alpha),
            soft_weight=cfg.soft_weight,
            sp_weight=cfg.sp_weight,
        )
        score = out["score"].detach()
        return {**terms, "s_mean": score.mean(), "s_std": score.std()}

    def on_train_epoch_start(self, epoch: int, max_epochs: int) -> None:
        self._epoch = epoch  # the ramps change once per epoch
        self._epoch_steps = 0
        # Train mode at every epoch start, as the original's train_one_epoch: after a legacy
        # eval-mode epoch, Lightning's validation loop restores the eval mode it found.
        self.train()

    # --- optimisation ---------------------------------------------------------------------
    def param_groups(self) -> list[dict[str, Any]]:
        """`base` (trunk + every layer4) and `classifiers` (the C+1 linears, plus the uncertainty
        MLP and the BN-neck scale when trained), the two LR groups of the original."""
        base = [*self.trunk.parameters(), *self.branches.parameters()]
        heads = [*self.classifiers.parameters(), *self.ue.parameters()]
        heads += [n.weight for n in self._necks()]
        scale = self.config.classifier_lr_scale
        return [
            {"params": [p for p in base if p.requires_grad], "name": "base"},
            {"params": [p for p in heads if p.requires_grad], "name": "classifiers", "lr_scale": scale},
        ]

    def train_sampler(self, dataset: Dataset) -> Sampler | None:
        if self.config.sampler == "shuffle":
            return None
        rows = getattr(dataset, "rows", None)
        if rows is None:
            raise FermixError("method.sampler=balanced needs a dataset of records with `expr` labels")
        return ClassBalancedSampler([int(r["expr"]) for r in rows], seed=int(getattr(dataset, "seed", 0)))

    # --- inference ------------------------------------------------------------------------
    def predict(self, batch: Batch) -> dict[str, Tensor]:
        """Target branch only: no auxiliary branches, no uncertainty scaling, no labels needed."""
        raw = self._pool(self.branches[self.num_classes](self.trunk(batch["image"])))
        logits = self.classifiers[self.num_classes](self.target_neck(self.dropout(raw)))
        return {"expr_logits": logits, "features": raw}

    def export(self) -> DMUETarget:
        """A plain single-branch network with the target branch's weights (a copy), in eval mode."""
        stages = [*copy.deepcopy(self.trunk), copy.deepcopy(self.branches[self.num_classes])]
        backbone = Backbone(stages, self.channels)
        head = copy.deepcopy(self.classifiers[self.num_classes])
        return DMUETarget(backbone, copy.deepcopy(self.pool), copy.deepcopy(self.target_neck), head).eval()
