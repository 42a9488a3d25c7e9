import math

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from fermix.data.samplers import ClassBalancedSampler
from fermix.data.torch_dataset import RecordsDataset
from fermix.errors import FermixError
from fermix.methods.dmue.losses import insert_zero, soft_labels
from fermix.methods.dmue.model import batch_is_valid
from fermix.methods.dmue.uncertainty import class_mean_similarity, min_max
from tests.methods.dmue.conftest import build


def _record_routes(model):
    """Marker values (1000 + batch index) of the rows each layer4 copy receives, per call."""
    calls = {k: [] for k in range(len(model.branches))}
    hooks = [
        branch.register_forward_pre_hook(
            lambda _m, args, k=k: calls[k].append(sorted(int(v) - 1000 for v in args[0][:, 0, 0, 0].round().tolist()))
        )
        for k, branch in enumerate(model.branches)
    ]
    return calls, hooks


def test_branch_routing_aux_gets_the_other_classes_latent_gets_its_own_target_gets_all(model, labels, layer3):
    calls, hooks = _record_routes(model)
    out = model.forward_from_layer3(layer3, labels)
    for h in hooks:
        h.remove()
    c = 4
    for k in range(c):
        aux_call, latent_call = calls[k]  # auxiliary pass first, then the latent-distribution pass
        assert aux_call == [i for i in range(16) if labels[i] != k]
        assert latent_call == [i for i in range(16) if labels[i] == k]
        assert k not in labels[out["subsets"][k]].tolist()  # no label k reaches branch k's head
        targets = out["aux_targets"][k]
        expected = labels[out["subsets"][k]] - (labels[out["subsets"][k]] > k).long()
        assert torch.equal(targets, expected)
        assert targets.min() >= 0 and targets.max() <= c - 2
        assert out["aux_logits"][k].shape == (12, c - 1)
    assert calls[c] == [list(range(16))]
    assert out["logits"].shape == (16, c) and out["latent_logits"].shape == (16, c - 1)


def _branch_ce(out, k):
    return F.cross_entropy(out["aux_logits"][k], out["aux_targets"][k])


def test_branch_k_aux_loss_ignores_the_class_k_samples(model, labels, layer3):
    model.eval()  # eval mode: train-mode BN would couple the samples of a batch
    with torch.no_grad():
        before = model.forward_from_layer3(layer3, labels)
        for k in range(4):
            perturbed = layer3.clone()
            rows = labels == k
            perturbed[rows] += torch.randn_like(perturbed[rows])
            after = model.forward_from_layer3(perturbed, labels)
            assert torch.equal(_branch_ce(after, k), _branch_ce(before, k))
            other = (k + 1) % 4
            assert not torch.equal(_branch_ce(after, other), _branch_ce(before, other))  # the test can fail


def test_soft_loss_sends_no_gradient_to_auxiliary_branches_or_their_heads(model, labels, layer3):
    out = model.forward_from_layer3(layer3, labels)
    model.losses(out, labels)["soft"].backward()
    for k in range(4):
        for p in [*model.branches[k].parameters(), *model.classifiers[k].parameters()]:
            assert p.grad is None or torch.count_nonzero(p.grad) == 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.branches[4].parameters())
    assert model.classifiers[4].weight.grad.abs().sum() > 0


def test_latent_logits_equal_branch_c_on_each_class_c_sample_alone(labels, layer3):
    torch.manual_seed(0)
    model = build(temperature=1.0).eval()
    with torch.no_grad():
        out = model.forward_from_layer3(layer3, labels)
        d = soft_labels(out["latent_logits"], labels, temperature=1.0)
        for i in range(16):
            c = int(labels[i])
            pooled = model.branches[c](layer3[i : i + 1]).mean(dim=(2, 3))
            a = model.classifiers[c](model.neck(pooled))
            expected = insert_zero(torch.softmax(a, dim=1), labels[i : i + 1])[0]
            assert torch.allclose(d[i], expected, atol=1e-6)
            assert d[i, c] == 0
    assert torch.allclose(d.sum(1), torch.ones(16), atol=1e-6)


def test_main_ce_uses_score_scaled_logits_and_evaluation_logits_do_not(model, labels):
    model.eval()
    image = torch.randn(16, 3, 32, 32)
    with torch.no_grad():
        model.classifiers[4].weight.mul_(1000)  # logits far from 0, so scaling them matters
        out = model.forward_from_layer3(model.trunk(image), labels)
        ce = model.losses(out, labels)["ce"]
        assert torch.allclose(ce, F.cross_entropy(out["score"] * out["logits"], labels))
        assert not torch.allclose(ce, F.cross_entropy(out["logits"], labels))
        logits = model.predict({"image": image})["expr_logits"]
    assert torch.allclose(logits, out["logits"], atol=1e-6)
    assert not torch.allclose(logits, out["score"] * out["logits"])


def test_sp_compares_each_branchs_logit_gram_on_its_subset_with_the_target_feature_gram(model, labels, layer3):
    """The original's order of operations: auxiliary Gram matrices from the heads' outputs (C−1-d),
    the target one from the BN-neck features, cut to I_k."""
    model.eval()
    with torch.no_grad():
        out = model.forward_from_layer3(layer3, labels)
        terms = []
        for k in range(4):
            idx = (labels != k).nonzero().squeeze(1)
            a = out["aux_logits"][k]
            z = out["target_features"][idx]
            g_aux, g_t = F.normalize(a @ a.t(), dim=1), F.normalize(z @ z.t(), dim=1)
            assert g_aux.shape == (12, 12) and a.shape[1] == 3
            terms.append(((g_aux - g_t) ** 2).mean())
        assert torch.allclose(model.losses(out, labels)["sp"], torch.stack(terms).mean(), atol=1e-7)
    assert model.config.sp_gram == "logits"  # the default: the original's Gram


def test_sp_gram_features_compares_each_branchs_neck_feature_gram_with_the_target_feature_gram(labels, layer3):
    """The opt-in `sp_gram=features` (Tung & Mori): both Gram matrices from BN-neck features (512-d
    for ResNet-18), so tied branches without dropout give SP = 0 — which the logits Gram does not."""
    torch.manual_seed(0)
    model = build(sp_gram="features", dropout=0.0).eval()
    with torch.no_grad():
        for p in model.branches[:4].parameters():  # untie the branches (all copies start equal)
            p.add_(0.3 * torch.randn_like(p))
        out = model.forward_from_layer3(layer3, labels)
        terms = []
        for k in range(4):
            idx = (labels != k).nonzero().squeeze(1)
            a, z = out["aux_features"][k], out["target_features"][idx]
            assert a.shape == (12, model.feature_dim)
            g_aux, g_t = F.normalize(a @ a.t(), dim=1), F.normalize(z @ z.t(), dim=1)
            terms.append(((g_aux - g_t) ** 2).mean())
        sp = model.losses(out, labels)["sp"]
        assert torch.allclose(sp, torch.stack(terms).mean(), atol=1e-7) and sp > 0
        for branch in model.branches[:4]:  # tie every auxiliary branch to the target branch
            branch.load_state_dict(model.branches[4].state_dict())
        tied = model.forward_from_layer3(layer3, labels)
        assert float(model.losses(tied, labels)["sp"]) == pytest.approx(0.0, abs=1e-10)
        unmarked = torch.rand(16, 32, 4, 4, generator=torch.Generator().manual_seed(3))
        logits = build(dropout=0.0).eval()
        logits.load_state_dict(model.state_dict())
        assert float(logits.losses(logits.forward_from_layer3(unmarked, labels), labels)["sp"]) > 1e-3


def test_uncertainty_reads_the_raw_pooled_target_features_and_the_heads_read_the_neck_output(model, labels, layer3):
    """Spec §1.3.1: the class-mean cosine uses the GAP features before dropout and BN-neck."""
    model.eval()
    with torch.no_grad():
        raw = model.branches[4](layer3).mean(dim=(2, 3))
        model.neck.running_mean.copy_(raw.mean(0))  # a neck that centres the features changes their cosines
        out = model.forward_from_layer3(layer3, labels)
        assert torch.allclose(out["raw_features"], raw, atol=1e-6)
        m_hat = min_max(class_mean_similarity(raw, labels, 4))
        assert torch.allclose(out["m_hat"], m_hat, atol=1e-6)
        assert not torch.allclose(min_max(class_mean_similarity(model.neck(raw), labels, 4)), m_hat, atol=1e-2)
        assert torch.allclose(out["score"], model.ue(raw, labels)[0], atol=1e-6)
        assert torch.allclose(out["target_features"], model.neck(raw), atol=1e-6)
        assert torch.allclose(out["logits"], model.classifiers[4](model.neck(raw)), atol=1e-6)


def test_the_training_graph_is_permutation_equivariant(model, labels, layer3):
    """Permuting the batch together with its labels permutes s, the logits and the latent logits and leaves
    every loss unchanged (eval mode, for dropout; float64, because the min-max magnifies summation-order rounding)."""
    model.eval().double()
    layer3 = layer3.double()
    perm = torch.randperm(16, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        out = model.forward_from_layer3(layer3, labels)
        shuffled = model.forward_from_layer3(layer3[perm], labels[perm])
        for key in ("score", "logits", "latent_logits", "m_hat"):
            assert torch.allclose(shuffled[key], out[key][perm], atol=1e-9), key
        before, after = model.losses(out, labels), model.losses(shuffled, labels[perm])
    for name, value in before.items():
        assert torch.allclose(after[name], value, atol=1e-12), name


def test_training_step_total_is_the_ramped_weighted_sum(model, labels, monkeypatch):
    parts = {
        name: torch.tensor(value, requires_grad=True)
        for name, value in {"ce": 2.0, "soft": 3.0, "sp": 0.01, "aux": 5.0}.items()
    }
    monkeypatch.setattr(type(model), "losses", lambda self, out, y: parts)
    batch = {"image": torch.randn(16, 3, 32, 32), "expr": labels}
    for epoch, alpha in [(3, 6.0), (12, 6.0), (0, 10.0)]:
        model.config.ramp_alpha = alpha
        model.on_train_epoch_start(epoch, 36)
        terms = model.training_step(batch)
        up = math.exp(-5 * (1 - epoch / alpha) ** 2) if epoch < alpha else 1.0
        down = 1.0 if epoch < alpha else math.exp(-((1 - alpha / epoch) ** 2))
        total = sum(float(v.detach()) for v in terms.values() if v.requires_grad)
        assert total == pytest.approx(up * 2.0 + up * (0.5 * 3.0 + 1000 * 0.01) + down * 5.0)
        assert not terms["s_mean"].requires_grad  # diagnostics are logged, never summed


def test_a_batch_with_a_class_seen_once_is_skipped(model):
    assert batch_is_valid(torch.tensor([0, 0, 1, 1, 2, 2, 3, 3]), 4)
    assert not batch_is_valid(torch.tensor([0, 0, 1, 1, 2, 2, 3, 2]), 4)  # class 3 once
    assert not batch_is_valid(torch.tensor([0, 0, 1, 1, 2, 2]), 4)  # class 3 absent
    batch = {"image": torch.randn(8, 3, 32, 32), "expr": torch.tensor([0, 0, 1, 1, 2, 2, 3, 2])}
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert model.training_step(batch) == {}
    assert model._epoch_steps == 0  # a skipped batch is not a step (legacy_eval_after_steps counts steps)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # no BN statistics moved


def test_unlabelled_samples_are_dropped_before_the_validity_rule(model):
    labels = torch.tensor([0, 0, 1, 1, -1, 2, 2, 3, 3, -1])
    batch = {"image": torch.randn(10, 3, 32, 32), "expr": labels}
    terms = model.training_step(batch)
    assert set(terms) == {"ce", "soft", "sp", "aux", "s_mean", "s_std"}
    assert all(torch.isfinite(v) for v in terms.values())


def test_param_groups_are_base_and_classifiers_with_the_ue_head_and_neck_scale_when_trained():
    model = build(train_ue_head=True, train_bnneck_weight=True)  # the paper's learnt MLP (a named option)
    groups = {g["name"]: g for g in model.param_groups()}
    assert set(groups) == {"base", "classifiers"}
    assert groups["classifiers"]["lr_scale"] == 10.0
    ids = {name: {id(p) for p in g["params"]} for name, g in groups.items()}
    assert {id(p) for p in model.trunk.parameters()} <= ids["base"]
    assert {id(p) for p in model.branches.parameters()} <= ids["base"]
    assert {id(p) for p in model.classifiers.parameters()} <= ids["classifiers"]
    assert {id(p) for p in model.ue.parameters()} <= ids["classifiers"]
    assert id(model.neck.weight) in ids["classifiers"] and id(model.neck.bias) not in ids["classifiers"]
    assert not model.neck.bias.requires_grad  # the BN-neck's shift is frozen by design


def test_by_default_ue_head_and_neck_scale_are_untrained_as_the_original_but_scores_still_shape_features(labels):
    model = build()  # the released code's optimizer groups: base and the linear heads only
    assert not model.config.train_ue_head and not model.config.train_bnneck_weight
    trained = {id(p) for g in model.param_groups() for p in g["params"]}
    assert not {id(p) for p in model.ue.parameters()} & trained and id(model.neck.weight) not in trained
    out = model.forward_from_layer3(model.trunk(torch.randn(16, 3, 32, 32)), labels)
    out["score"].sum().backward()
    assert all(p.grad is None for p in model.ue.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.branches[4].parameters())


@pytest.mark.parametrize(
    "options", [{}, {"shared_bnneck": False}, {"train_ue_head": True, "train_bnneck_weight": True}]
)
def test_every_trainable_parameter_is_in_exactly_one_group(options):
    model = build(**options)
    ids = [id(p) for g in model.param_groups() for p in g["params"]]
    assert len(ids) == len(set(ids))
    assert set(ids) == {id(p) for p in model.parameters() if p.requires_grad}


def test_classifiers_have_no_bias_and_tiny_normal_weights():
    torch.manual_seed(0)
    model = build(num_classes=7, backbone={"name": "small_cnn", "width": 32})
    assert all(head.bias is None for head in model.classifiers)
    assert [head.out_features for head in model.classifiers] == [6] * 7 + [7]
    weights = torch.cat([head.weight.detach().flatten() for head in model.classifiers])
    assert float(weights.std()) == pytest.approx(0.001, rel=0.05)


def test_every_layer4_copy_starts_from_the_same_weights():
    model = build()
    reference = model.branches[0].state_dict()
    for branch in model.branches[1:]:
        assert all(torch.equal(v, reference[k]) for k, v in branch.state_dict().items())


def test_separate_target_neck_when_not_shared(labels, layer3):
    model = build(shared_bnneck=False)
    assert model.target_neck is not model.neck
    model.forward_from_layer3(layer3, labels)
    assert model.target_neck.num_batches_tracked == 1  # the target pass only
    assert model.neck.num_batches_tracked == 8  # C auxiliary + C latent calls


def test_shared_neck_running_statistics_mix_every_pass(model, labels, layer3):
    model.forward_from_layer3(layer3, labels)
    assert model.target_neck is model.neck and model.neck.num_batches_tracked == 9  # C aux + target + C latent


def test_bnneck_defaults_to_off_for_resnet50_ibn_only():
    assert isinstance(build().neck, torch.nn.BatchNorm1d)
    ibn = build(num_classes=3, backbone={"name": "resnet50_ibn"})
    assert isinstance(ibn.neck, torch.nn.Identity) and ibn.feature_dim == 2048
    assert isinstance(build(bnneck=False).neck, torch.nn.Identity)


def test_gem_pooling_is_the_generalised_mean():
    model = build(pooling="gem", gem_p=3.0)
    x = torch.rand(2, 5, 3, 3) + 0.1
    assert torch.allclose(model.pool(x).flatten(1), (x**3).mean(dim=(2, 3)) ** (1 / 3), atol=1e-6)


def test_balanced_sampler_is_built_from_the_dataset_labels():
    records = pd.DataFrame({"expr": [0] * 1 + [1] * 10 + [2] * 100})
    dataset = RecordsDataset(records, load=dict, transform=lambda x: x, seed=3)
    sampler = build(num_classes=3).train_sampler(dataset)
    assert isinstance(sampler, ClassBalancedSampler) and sampler.seed == 3 and len(sampler) == 111
    assert build(num_classes=3, sampler="shuffle").train_sampler(dataset) is None


def test_msceleb_stem_has_no_relu_and_a_2x2_pool_and_keeps_the_224_feature_sizes():
    model = build(num_classes=3, backbone={"name": "resnet18"}, stem="msceleb", image_size=224).eval()
    stem = model.trunk[0]
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        manual = stem[4](torch.nn.functional.max_pool2d(stem[1](stem[0](x)), 2, 2))
        assert torch.allclose(stem(x), manual, atol=1e-6)
        assert stem(x).shape[-2:] == (56, 56)
        layer3 = model.trunk(x)
        assert layer3.shape[1:] == (256, 14, 14)
        assert model.branches[3](layer3).shape[1:] == (512, 7, 7)
    with pytest.raises(FermixError, match="stem=msceleb needs a ResNet backbone"):
        build(stem="msceleb")


def test_legacy_mode_trains_in_eval_mode_from_the_given_step_of_each_epoch(labels):
    model = build(legacy_eval_after_steps=2).train()
    batch = {"image": torch.randn(16, 3, 32, 32), "expr": labels}
    modes = []
    for _ in range(3):
        model.training_step(batch)
        modes.append(model.training)
    assert modes == [True, True, False]
    model.on_train_epoch_start(1, 3)  # no model.train() by hand: the epoch start restores train mode itself
    assert model.training
    model.training_step(batch)
    assert model.training


@pytest.mark.parametrize(
    ("option", "value"), [("pooling", "max"), ("sampler", "uniform"), ("stem", "caffe"), ("sp_gram", "gram")]
)
def test_bad_choices_are_one_sentence_errors(option, value):
    with pytest.raises(FermixError, match=f"method.{option}={value} is not one of"):
        build(**{option: value})


@pytest.mark.parametrize(
    ("option", "value"),
    [("dropout", 1.0), ("dropout", -0.1), ("gem_p", 0.0), ("legacy_eval_after_steps", -1), ("temperature", 0.0)],
)
def test_bad_numbers_are_one_sentence_errors(option, value):
    with pytest.raises(FermixError, match=f"method.{option} must be"):
        build(**{option: value})
