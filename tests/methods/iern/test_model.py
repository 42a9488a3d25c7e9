"""IERN faithfulness properties (spec iern.md §7, items 1-8 and 10) on CPU with random weights."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from fermix.data.info import DataInfo
from fermix.data.label_spaces import get_label_space
from fermix.engine.optim import build_optimizer, build_scheduler
from fermix.methods.iern import IERN, IERNConfig
from fermix.methods.iern.losses import center_loss, confusion_loss
from fermix.methods.iern.model import CLS, DIS, FEAT

SMALL_BACKBONE = {"name": "small_cnn", "width": 8}


def _info(image_size: int = 32, strata: int = 3) -> DataInfo:
    return DataInfo(
        label_space=get_label_space("mixbasic6"),
        keys=frozenset({"image", "expr", "domain"}),
        image_size=image_size,
        num_domains=strata,
    )


def _small(**kw: Any) -> IERN:
    torch.manual_seed(0)
    return IERN(IERNConfig(channels=16, **kw), _info(), SMALL_BACKBONE)


def _batch(n: int = 6, size: int = 32) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return {
        "image": torch.randn(n, 3, size, size, generator=g),
        "expr": torch.arange(n) % 6,
        "domain": torch.arange(n) % 3,
        "index": torch.arange(n),
    }


def _randomise_dictionary(model: IERN) -> None:
    with torch.no_grad():
        model.dictionary.normal_()


class Handle:
    """The engine's ManualOptimization handle with real Adam optimizers, recording what each step touched."""

    def __init__(self, model: IERN, sched_cfg: dict | None = None, max_epochs: int = 1) -> None:
        self.model = model
        optim_cfg = {"_target_": "torch.optim.Adam", "lr": 2e-4, "betas": [0.5, 0.999]}

        def factory(groups):
            opt = build_optimizer(optim_cfg, groups)
            return opt, build_scheduler(sched_cfg or {"_target_": None}, opt, max_epochs)

        self.pairs = model.configure_optimizers(factory)
        self.grads: dict[int, set[str]] = {}
        self.changed: dict[int, set[str]] = {}

    def optimizer(self, index: int):
        return self.pairs[index][0]

    def zero_grad(self, index: int) -> None:
        self.optimizer(index).zero_grad()

    def backward(self, loss: torch.Tensor, **kwargs: Any) -> None:
        self._index = len(self.grads)
        for p in self.model.parameters():
            p.grad = None
        loss.backward(**kwargs)
        self.grads[self._index] = {n for n, p in self.model.named_parameters() if p.grad is not None}

    def step(self, index: int) -> None:
        before = {n: p.detach().clone() for n, p in self.model.named_parameters()}
        self.optimizer(index).step()
        self.changed[index] = {n for n, p in self.model.named_parameters() if not torch.equal(before[n], p)}


def _modules(names: set[str]) -> set[str]:
    """Parameter names -> the IERN module they belong to (backbone and proj together are f_b)."""
    top = {n.split(".")[0] for n in names}
    return {"f_b" if t in ("backbone", "proj") else t for t in top}


# --- 1, 2: shapes and parameter counts of the published model ---------------------------------------


@pytest.fixture(scope="module")
def resnet50_iern() -> IERN:
    torch.manual_seed(0)
    return IERN(IERNConfig(), _info(image_size=224), {"name": "resnet50"}).eval()


def test_published_model_has_the_papers_parameter_counts(resnet50_iern):
    m = resnet50_iern

    def count(*modules):
        return sum(p.numel() for mod in modules for p in mod.parameters())

    assert count(m.backbone) == 23_508_032
    assert count(m.backbone, m.proj) == 24_557_120
    assert count(m.emo_gen) == count(m.con_gen) == 11_801_088
    assert count(m.fuser) == 18_881_024
    assert count(m.emo_dis) == 4_370_752
    assert count(m.con_dis) == 4_369_024
    assert count(m.classifier) == 3_078
    assert m.centers.numel() == 75_264
    assert "dictionary" in dict(m.named_buffers()) and "dictionary" not in dict(m.named_parameters())


def test_published_model_shapes_at_224_px(resnet50_iern):
    m = resnet50_iern
    with torch.no_grad():
        b = m.base(torch.randn(2, 3, 224, 224))
        e, c = m.emo_gen(b), m.con_gen(b)
        assert b.shape == e.shape == c.shape == (2, 512, 7, 7)
        assert m.fuser(e, c).shape == (2, 512, 7, 7)
        assert m.emo_dis(e).shape == (2, 6)
        assert m.con_dis(c).shape == (2, 3)
        assert m.classifier(e).shape == (2, 6)
        assert m.dictionary.shape == (3, 512, 7, 7)
        assert m.centers.shape == (3, 25_088)
        assert m.stratum_logits(e).shape == (3, 2, 6)


def test_discriminator_outputs_keep_the_batch_dimension_for_one_sample():
    m = _small().eval()
    e = m.emo_gen(m.base(torch.randn(1, 3, 32, 32)))
    assert m.emo_dis(e).shape == (1, 6) and m.con_dis(e).shape == (1, 3)


# --- 3: the backdoor adjustment ------------------------------------------------------------------------


def test_logits_are_the_uniform_mean_over_strata():
    m = _small().eval()
    _randomise_dictionary(m)
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        e = m.emo_gen(m.base(x))
        per = [m.classifier(m.fuser(e, z.expand(4, -1, -1, -1))) for z in m.dictionary]
        logits = m.predict({"image": x})["expr_logits"]
        pooled = torch.stack([m.fuser(e, z.expand(4, -1, -1, -1)).mean(dim=(2, 3)) for z in m.dictionary]).mean(0)
    assert torch.allclose(logits, torch.stack(per).mean(0), atol=1e-5)
    assert torch.allclose(logits, m.classifier.fc(pooled), atol=1e-5)


def test_permuting_the_dictionary_leaves_logits_unchanged():
    m = _small().eval()
    _randomise_dictionary(m)
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        before = m.predict({"image": x})["expr_logits"]
        m.dictionary.copy_(m.dictionary[[2, 0, 1]])
        after = m.predict({"image": x})["expr_logits"]
    assert torch.allclose(before, after, atol=1e-6)


def test_identical_strata_reduce_to_a_single_fused_pass():
    m = _small().eval()
    z = torch.randn(m.dictionary.shape[1:])
    with torch.no_grad():
        m.dictionary.copy_(z.expand(3, -1, -1, -1))
        x = torch.randn(4, 3, 32, 32)
        e = m.emo_gen(m.base(x))
        single = m.classifier(m.fuser(e, z.expand(4, -1, -1, -1)))
        assert torch.allclose(m.predict({"image": x})["expr_logits"], single, atol=1e-5)


def test_per_stratum_logits_are_reported_batch_first():
    m = _small().eval()
    out = m.predict({"image": torch.randn(5, 3, 32, 32)})
    assert out["stratum_logits"].shape == (5, 3, 6)
    assert torch.allclose(out["stratum_logits"].mean(1), out["expr_logits"], atol=1e-6)


# --- 4: inference needs only f_b, g_e, g_r, Z, f_c ------------------------------------------------------


def test_eval_prediction_of_a_sample_does_not_depend_on_its_batch():
    m = _small().eval()
    _randomise_dictionary(m)
    x = torch.randn(5, 3, 32, 32)
    with torch.no_grad():
        together = m.predict({"image": x})["expr_logits"]
        alone = torch.cat([m.predict({"image": x[i : i + 1]})["expr_logits"] for i in range(5)])
    assert torch.allclose(together, alone, atol=1e-5)


def test_test_predictions_ignore_the_context_encoder_and_discriminators():
    m = _small().eval()
    _randomise_dictionary(m)
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        before = m.predict({"image": x})["expr_logits"]  # no `domain` key: the source is not needed at test
        for module in (m.con_gen, m.emo_dis, m.con_dis):
            for p in module.parameters():
                p.normal_()
        after = m.predict({"image": x})["expr_logits"]
    assert torch.equal(before, after)


def test_export_keeps_only_inference_parts_and_matches_predict():
    m = _small().eval()
    _randomise_dictionary(m)
    exported = m.export().eval()
    names = {n.split(".")[0] for n, _ in exported.named_parameters()}
    assert names == {"backbone", "proj", "emo_gen", "fuser", "classifier"}
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(exported(x), m.predict({"image": x})["expr_logits"])


# --- 5: the dictionary follows the centers ------------------------------------------------------------------


def test_dictionary_equals_the_centers_after_every_iteration():
    m = _small().train()
    handle = Handle(m)
    assert not torch.equal(m.dictionary.flatten(1), m.centers.detach())
    for i in range(3):
        m.manual_step(_batch(), handle)
        assert torch.equal(m.dictionary, m.centers.detach().view(3, 16, 2, 2)), f"iteration {i}"


def test_checkpointed_dictionary_reproduces_test_logits_bit_for_bit():
    m = _small().train()
    handle = Handle(m)
    for _ in range(2):
        m.manual_step(_batch(), handle)
    state = m.state_dict()
    assert "dictionary" in state and "centers" in state
    fresh = _small()
    fresh.load_state_dict(state)
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        expected = m.eval().predict({"image": x})["expr_logits"]
        assert torch.equal(fresh.eval().predict({"image": x})["expr_logits"], expected)


# --- 6: what each of the three steps touches -------------------------------------------------------------------


def test_each_step_updates_exactly_its_modules():
    m = _small().train()
    handle = Handle(m)
    m.manual_step(_batch(), handle)
    assert _modules(handle.changed[DIS]) == {"emo_dis", "con_dis"}
    assert _modules(handle.changed[FEAT]) == {"emo_gen", "con_gen", "fuser", "centers"}
    assert _modules(handle.changed[CLS]) == {"f_b", "emo_gen", "classifier"}  # the fuser's lr is 0


def test_gradients_of_each_loss_reach_only_the_intended_modules():
    m = _small().train()
    handle = Handle(m)
    m.manual_step(_batch(), handle)
    dis, feat, cls = (_modules(handle.grads[i]) for i in range(3))
    assert dis == {"emo_dis", "con_dis"}
    # f_b is not differentiated in the feature step (its gradients would be discarded before the Cls step),
    # nor g_r in the Cls step (its lr there is 0): tests/methods/iern/test_model_step_cost.py
    assert feat == {"emo_gen", "con_gen", "fuser", "centers"}
    assert cls == {"f_b", "emo_gen", "classifier"}  # never the centers or g_c: Z is detached


def test_no_intervention_ablation_classifies_the_emotion_feature_directly():
    m = _small(intervention="none").eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        out = m.predict({"image": x})
        assert torch.equal(out["expr_logits"], m.classifier(m.emo_gen(m.base(x))))
    assert "stratum_logits" not in out


# --- 7: loss formulas ------------------------------------------------------------------------------------------


def test_center_loss_is_the_mean_squared_distance_to_the_own_center():
    torch.manual_seed(0)
    features, centers = torch.randn(5, 2, 3, 3), torch.randn(3, 18)
    labels = torch.tensor([0, 2, 1, 2, 0])
    expected = sum(((features[i].flatten() - centers[labels[i]]) ** 2).sum() for i in range(5)) / 5
    assert torch.allclose(center_loss(features, labels, centers), expected)


def test_training_reports_the_weighted_center_loss():
    m = _small(lambda_cnfnd=5e-4).train()
    captured = {}
    hook = m.con_gen.register_forward_hook(lambda _m, _i, out: captured.setdefault("c", out.detach().clone()))
    centers = m.centers.detach().clone()
    batch = _batch()
    terms = m.manual_step(batch, Handle(m))
    hook.remove()
    expected = 5e-4 * ((captured["c"].flatten(1) - centers[batch["domain"]]) ** 2).sum(1).mean()
    assert torch.allclose(terms["cnfnd"], expected, rtol=1e-5)


def test_confusion_loss_is_zero_exactly_for_uniform_outputs_and_near_zero_at_init():
    assert confusion_loss(torch.zeros(4, 6)).item() == 0.0
    assert confusion_loss(torch.tensor([[5.0, 0.0, 0.0]])).item() > 0.1
    m = _small().eval()
    with torch.no_grad():
        b = m.base(torch.randn(4, 3, 32, 32))
        assert confusion_loss(m.con_dis(m.emo_gen(b))).item() < 1e-3
        assert confusion_loss(m.emo_dis(m.con_gen(b))).item() < 1e-3


# --- 8: the learning-rate schedule ------------------------------------------------------------------------------


def test_lr_factors_over_160_epochs_follow_warmup_then_linear_decay():
    m = _small()
    warmup_linear = "fermix.engine.schedulers.warmup_linear"
    sched_cfg = {"_target_": warmup_linear, "warmup_epochs": 5, "hold_epochs": 15, "decay_epochs": 140}
    handle = Handle(m, sched_cfg, max_epochs=160)
    expected = [0.2, 0.4, 0.6, 0.8, 1.0] + [1.0] * 15 + [1 - i / 141 for i in range(1, 141)]
    seen: list[list[list[float]]] = []
    for _epoch in range(160):
        seen.append([[g["lr"] for g in opt.param_groups] for opt, _ in handle.pairs])
        for opt, sched in handle.pairs:
            opt.step()  # keeps PyTorch's "scheduler before optimizer" check quiet
            sched["scheduler"].step()
    for index, (opt, _) in enumerate(handle.pairs):
        for g, group in enumerate(opt.param_groups):
            base = group["initial_lr"]
            factors = [seen[e][index][g] / base if base else seen[e][index][g] for e in range(160)]
            if group["name"] == "fuser" and index == CLS:
                assert factors == [0.0] * 160
            else:
                assert factors == pytest.approx(expected, abs=1e-12), (index, group["name"])
    backbone = handle.pairs[CLS][0].param_groups[0]
    assert backbone["name"] == "backbone" and backbone["initial_lr"] == pytest.approx(1e-4)


# --- 10: why the emotion feature is recomputed ---------------------------------------------------------------------


def test_original_step_order_fails_on_modern_pytorch():
    m = _small(recompute_emotion=False).train()
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        m.manual_step(_batch(), Handle(m))


def test_recomputed_step_order_runs():
    m = _small().train()
    terms = m.manual_step(_batch(), Handle(m))
    assert set(terms) == {"cls", "emo_dis", "con_dis", "emo_gen", "con_gen", "cnfnd", "recons"}
    assert all(torch.isfinite(v) for v in terms.values())


def test_unlabelled_samples_are_left_out_and_tiny_batches_skipped():
    m = _small().train()
    batch = _batch()
    batch["expr"] = torch.tensor([0, -1, 2, -1, 4, 5])
    assert m.manual_step(batch, Handle(m))
    batch["expr"] = torch.tensor([0, -1, -1, -1, -1, -1])
    assert m.manual_step(batch, Handle(m)) == {}


def test_a_backbone_map_smaller_than_2x2_is_a_clear_error():
    from fermix.errors import FermixError

    with pytest.raises(FermixError, match="at least 2×2"):
        IERN(IERNConfig(channels=8), _info(image_size=16), SMALL_BACKBONE)
