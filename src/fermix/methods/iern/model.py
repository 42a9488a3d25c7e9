"""IERN: interventional emotion recognition by backdoor adjustment over dataset context (spec §1-3).

The backbone feature is split into an emotion part e = g_e(b) and a context part c = g_c(b).
A center loss learns one context prototype per source dataset; the prototypes are copied into
the confounder dictionary Z (a buffer, so it travels in the checkpoint) after every feature
step. Classification fuses e with every Z_k and averages the K logits — P(Y|do(X)) with a
uniform prior — in training and at test.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fermix.data.info import DataInfo
from fermix.errors import FermixError
from fermix.methods.base import Batch, ManualOptimization, Method, MethodConfig, OptimizerFactory
from fermix.methods.iern.losses import center_loss, confusion_loss
from fermix.methods.iern.networks import Classifier, Discriminator, FeatureEncoder, Fuser, init_normal
from fermix.models.backbones import build_backbone

DIS, FEAT, CLS = 0, 1, 2  # optimizer indices, in the order they step


def stratum_logits(fuser: nn.Module, classifier: nn.Module, dictionary: Tensor, emotion: Tensor) -> Tensor:
    """ℓ_k = f_c(g_r(e, Z_k)) for every stratum: K×B×E. One g_r pass per k, so BN sees each pass alone."""
    n = emotion.shape[0]
    return torch.stack([classifier(fuser(emotion, z.unsqueeze(0).expand(n, -1, -1, -1))) for z in dictionary])


@dataclass
class IERNConfig(MethodConfig):
    channels: int = 512  # C: the 1×1 projection's width (512 in the paper)
    gen_blocks: int = 2  # residual blocks in g_e and g_c
    recons_blocks: int = 3  # residual blocks in the fuser g_r
    dis_blocks: int = 3  # channel-halving 1×1 convs in each discriminator
    lambda_cnfnd: float = 5e-4  # center-loss weight
    backbone_lr_scale: float = 0.5  # base_lr / lr = 1e-4 / 2e-4
    init_gain: float = 0.02
    intervention: str = "backdoor"  # backdoor | none (ablation: classify f_c(e), no dictionary)
    recompute_emotion: bool = True  # recompute e after the feature step (needed on PyTorch >= 1.5; see docs)


class IERN(Method):
    name = "iern"
    Config = IERNConfig
    requires = frozenset({"image", "expr", "domain"})
    tasks = ("expr",)
    automatic_optimization = False

    def __init__(self, config: IERNConfig, data_info: DataInfo, backbone: Mapping[str, Any]) -> None:
        super().__init__(config, data_info, backbone)
        if config.intervention not in ("backdoor", "none"):
            raise FermixError(f"iern: intervention must be backdoor or none, not {config.intervention!r}")
        self.num_strata = int(data_info.num_domains)
        num_classes = data_info.num_classes
        c = int(config.channels)
        self.backbone = build_backbone(backbone)
        self.proj = nn.Conv2d(self.backbone.out_channels, c, 1)  # default init, as the original
        self.spatial = self._feature_size(data_info)
        s = self.spatial
        self.emo_gen = FeatureEncoder(c, config.gen_blocks)
        self.con_gen = FeatureEncoder(c, config.gen_blocks)
        self.fuser = Fuser(c, config.recons_blocks)
        self.emo_dis = Discriminator(c, s, num_classes, config.dis_blocks)
        self.con_dis = Discriminator(c, s, self.num_strata, config.dis_blocks)
        self.classifier = Classifier(c, num_classes)
        for module in (self.emo_gen, self.con_gen, self.fuser, self.emo_dis, self.con_dis, self.classifier):
            init_normal(module, config.init_gain)
        self.centers = nn.Parameter(torch.randn(self.num_strata, c * s * s))
        self.register_buffer("dictionary", torch.zeros(self.num_strata, c, s, s))

    def _feature_size(self, data_info: DataInfo) -> int:
        """S of the projected map at the data's image size (7 for ResNet-50 at 224 px)."""
        was_training = self.backbone.training
        self.backbone.eval()
        with torch.no_grad():
            probe = torch.zeros(1, data_info.in_channels, data_info.image_size, data_info.image_size)
            h, w = self.backbone(probe).shape[-2:]
        self.backbone.train(was_training)
        if h != w or h < 2:
            raise FermixError(
                f"iern needs a square feature map of at least 2×2; this backbone gives {h}×{w} at "
                f"{data_info.image_size} px (use a larger data.image_size or a shallower backbone)"
            )
        return int(h)

    # --- forward pieces -------------------------------------------------------------------
    def base(self, image: Tensor) -> Tensor:
        """f_b: backbone + 1×1 projection → B×C×S×S."""
        return self.proj(self.backbone(image))

    def stratum_logits(self, emotion: Tensor) -> Tensor:
        return stratum_logits(self.fuser, self.classifier, self.dictionary, emotion)

    def classify(self, emotion: Tensor) -> tuple[Tensor, Tensor | None]:
        """Backdoor-adjusted logits (uniform prior: the plain mean over strata) and the per-stratum logits."""
        if self.config.intervention == "none":
            return self.classifier(emotion), None
        strata = self.stratum_logits(emotion)
        return strata.mean(dim=0), strata

    def sync_dictionary(self) -> None:
        """Z ← sg(centers), reshaped to K×C×S×S."""
        with torch.no_grad():
            self.dictionary.copy_(self.centers.detach().view_as(self.dictionary))

    def _set_discriminators_trainable(self, flag: bool) -> None:
        for p in (*self.emo_dis.parameters(), *self.con_dis.parameters()):
            p.requires_grad_(flag)

    # --- training: three optimizers per batch, in the order of spec §3 ----------------------
    def configure_optimizers(self, factory: OptimizerFactory) -> list[tuple[Any, Any]]:
        backbone = [*self.backbone.parameters(), *self.proj.parameters()]
        return [
            factory([{"params": self.emo_dis.parameters(), "name": "emo_dis"},
                     {"params": self.con_dis.parameters(), "name": "con_dis"}]),
            factory([{"params": self.emo_gen.parameters(), "name": "emo_gen"},
                     {"params": self.con_gen.parameters(), "name": "con_gen"},
                     {"params": [self.centers], "name": "centers"},
                     {"params": self.fuser.parameters(), "name": "fuser"}]),
            factory([{"params": backbone, "lr_scale": self.config.backbone_lr_scale, "name": "backbone"},
                     {"params": self.emo_gen.parameters(), "name": "emo_gen"},
                     {"params": self.fuser.parameters(), "lr": 0.0, "name": "fuser"},  # listed, frozen (as published)
                     {"params": self.classifier.parameters(), "name": "classifier"}]),
        ]  # fmt: skip

    def unclipped_parameters(self) -> list[nn.Parameter]:
        """The centers' gradient is scaled by 1/λ before the feature step: counted by gradient clipping,
        it would shrink the whole feature step (g_e, g_c, g_r). Clipping sees the networks only."""
        return [self.centers]

    def manual_step(self, batch: Batch, opt: ManualOptimization) -> dict[str, Tensor]:
        image, expr, domain = batch["image"], batch["expr"], batch["domain"]
        labelled = expr >= 0
        if not bool(labelled.all()):
            image, expr, domain = image[labelled], expr[labelled], domain[labelled]
        if len(expr) < 2:  # BatchNorm needs two samples; nothing to learn from this batch
            return {}
        lam = self.config.lambda_cnfnd

        # 1. forward. With recompute_emotion, only step 4 back-propagates into f_b (through a fresh e), so
        # steps 2-3 start from sg(b): the feature step no longer runs the backbone's backward, whose gradients
        # zero_grad(CLS) used to discard. Same losses, updates and BN statistics (tests/methods/iern).
        recompute = self.config.recompute_emotion
        b = self.base(image)
        heads_in = b.detach() if recompute else b
        e = self.emo_gen(heads_in)
        c = self.con_gen(heads_in)
        reconstruction = self.fuser(e, c)

        # 2. discriminators learn to read emotion from e and the source from c
        self._set_discriminators_trainable(True)
        opt.zero_grad(DIS)
        dis_emo = F.cross_entropy(self.emo_dis(e.detach()), expr)
        dis_con = F.cross_entropy(self.con_dis(c.detach()), domain)
        opt.backward((dis_emo + dis_con) / 2)
        opt.step(DIS)

        # 3. features: e must confuse d_c, c must confuse d_e; c is pulled to its source's center
        self._set_discriminators_trainable(False)
        try:
            opt.zero_grad(FEAT)
            gen_emo = confusion_loss(self.con_dis(e))
            gen_con = confusion_loss(self.emo_dis(c))
            cnfnd = lam * center_loss(c, domain, self.centers)
            recons = F.mse_loss(reconstruction, heads_in)
            opt.backward((gen_emo + gen_con) / 2 + cnfnd + recons, retain_graph=not recompute)
            if lam and self.centers.grad is not None:
                self.centers.grad.mul_(1.0 / lam)  # centers learn from the unweighted loss (a no-op under Adam)
            opt.step(FEAT)
        finally:
            self._set_discriminators_trainable(True)

        # 4. classification through the backdoor adjustment, with the freshly synced dictionary
        self.sync_dictionary()
        if recompute:
            e = self.emo_gen(b)  # g_e changed in place in step 3; b (the backbone) did not
        opt.zero_grad(CLS)  # also drops the backbone gradients step 3 leaves when recompute_emotion=false
        # g_r is in this optimizer with lr 0 (as published): its weight gradients would move nothing, so
        # they are not computed and Adam skips it; the gradient still flows through g_r to e and f_b.
        self.fuser.requires_grad_(False)
        try:
            logits, _ = self.classify(e)
            cls = F.cross_entropy(logits, expr)
            opt.backward(cls)
        finally:
            self.fuser.requires_grad_(True)
        opt.step(CLS)

        return {
            "cls": cls.detach(),
            "emo_dis": dis_emo.detach(),
            "con_dis": dis_con.detach(),
            "emo_gen": gen_emo.detach(),
            "con_gen": gen_con.detach(),
            "cnfnd": cnfnd.detach(),
            "recons": recons.detach(),
        }

    # --- inference ------------------------------------------------------------------------
    def predict(self, batch: Batch) -> dict[str, Tensor]:
        """g_c, the discriminators and the source label are not used: only f_b, g_e, g_r, Z and f_c."""
        e = self.emo_gen(self.base(batch["image"]))
        logits, strata = self.classify(e)
        out = {"expr_logits": logits, "features": e.mean(dim=(2, 3))}
        if strata is not None:
            out["stratum_logits"] = strata.transpose(0, 1)  # B×K×E (batch first, so splits concatenate)
        return out

    def export(self) -> nn.Module:
        return IERNInference(self)


class IERNInference(nn.Module):
    """What inference needs: backbone, projection, emotion encoder, fuser, dictionary and classifier."""

    def __init__(self, method: IERN) -> None:
        super().__init__()
        self.backbone, self.proj, self.emo_gen = method.backbone, method.proj, method.emo_gen
        self.fuser, self.classifier = method.fuser, method.classifier
        self.register_buffer("dictionary", method.dictionary.clone())
        self.intervention = method.config.intervention

    def predict(self, batch: Batch) -> dict[str, Tensor]:
        """IERN.predict's outputs from these parts alone (what `fermix export` writes)."""
        e = self.emo_gen(self.proj(self.backbone(batch["image"])))
        out = {"features": e.mean(dim=(2, 3))}
        if self.intervention == "none":
            out["expr_logits"] = self.classifier(e)
            return out
        strata = stratum_logits(self.fuser, self.classifier, self.dictionary, e)
        out["expr_logits"] = strata.mean(dim=0)
        out["stratum_logits"] = strata.transpose(0, 1)  # B×K×E
        return out

    def forward(self, image: Tensor) -> Tensor:
        return self.predict({"image": image})["expr_logits"]
