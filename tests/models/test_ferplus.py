"""resnet50_ferplus is albanie's caffe-style resnet50_ferplus_dag, and dag-layout weights load into it exactly."""

import pytest
import torch
from torch import nn

from fermix.errors import FermixError
from fermix.models.backbones import Backbone, build_backbone
from fermix.models.ferplus import convert_dag_state_dict, load_dag_weights, resnet50_ferplus

# Module names, parameter shapes and ordering as written in the dag's model definition file.
DAG_SAMPLE_SHAPES = {
    "conv1_7x7_s2.weight": (64, 3, 7, 7),
    "conv1_7x7_s2_bn.running_var": (64,),
    "conv2_1_1x1_proj.weight": (256, 64, 1, 1),
    "conv2_3_1x1_increase_bn.bias": (256,),
    "conv3_1_1x1_reduce.weight": (128, 256, 1, 1),
    "conv3_1_1x1_proj_bn.running_mean": (512,),
    "conv4_6_1x1_increase_bn.running_var": (1024,),
    "conv5_1_1x1_proj.weight": (2048, 1024, 1, 1),
    "conv5_3_3x3.weight": (512, 512, 3, 3),
    "conv5_3_1x1_increase_bn.weight": (2048,),
}
_PARTS = {"conv1": "1x1_reduce", "bn1": "1x1_reduce_bn", "conv2": "3x3", "bn2": "3x3_bn",
          "conv3": "1x1_increase", "bn3": "1x1_increase_bn"}


@pytest.fixture(scope="module")
def net() -> Backbone:
    torch.manual_seed(0)
    return resnet50_ferplus()


def _layers(net):
    return [net.stages[0][4], net.stages[1], net.stages[2], net.stages[3]]


def _dag_modules(net):
    """The dag's module names -> our modules, found by walking the network (not through the module's table)."""
    modules = {"conv1_7x7_s2": net.stages[0][0], "conv1_7x7_s2_bn": net.stages[0][1]}
    for s, layer in enumerate(_layers(net)):
        for b, block in enumerate(layer):
            for attr, suffix in _PARTS.items():
                modules[f"conv{s + 2}_{b + 1}_{suffix}"] = getattr(block, attr)
            if b == 0:
                modules[f"conv{s + 2}_1_1x1_proj"] = block.downsample[0]
                modules[f"conv{s + 2}_1_1x1_proj_bn"] = block.downsample[1]
    return modules


def _dag_state(net, with_num_batches_tracked=False):
    state = {}
    for name, module in _dag_modules(net).items():
        for param, value in module.state_dict().items():
            if param != "num_batches_tracked" or with_num_batches_tracked:
                state[f"{name}.{param}"] = value.clone()
    return state


def _randomised(state, seed=1):
    g = torch.Generator().manual_seed(seed)
    out = {}
    for key, value in state.items():
        if key.endswith("running_var"):
            out[key] = torch.rand(value.shape, generator=g) + 0.5
        elif value.is_floating_point():
            out[key] = torch.randn(value.shape, generator=g) * 0.05
        else:
            out[key] = value
    return out


def test_112_px_gives_a_2048x4x4_map_as_the_ceil_mode_arithmetic_says(net):
    # conv1 7×7/2 pad 3: floor((112 + 6 - 7) / 2) + 1 = 56; pool1 3×3/2 pad 0 ceil: ceil((56 - 3) / 2) + 1 = 28;
    # conv3_1 / conv4_1 / conv5_1 1×1/2: floor((n - 1) / 2) + 1 = 14, 7, 4.
    assert net.channels == [256, 512, 1024, 2048] and net.out_channels == 2048
    with torch.no_grad():
        maps = net.eval().forward_stages(torch.randn(2, 3, 112, 112))
    assert [tuple(m.shape) for m in maps] == [(2, 256, 28, 28), (2, 512, 14, 14), (2, 1024, 7, 7), (2, 2048, 4, 4)]


def test_stem_max_pool_is_3x3_stride_2_ceil_mode_without_padding(net):
    pool = net.stages[0][3]
    assert isinstance(pool, nn.MaxPool2d)
    assert (pool.kernel_size, pool.stride, pool.padding, pool.ceil_mode) == (3, 2, 0, True)
    # At 114 px conv1 gives 57: ceil((57 - 3) / 2) + 1 = 28 here; torchvision's padded floor pool would give 29.
    with torch.no_grad():
        stem = nn.Sequential(*list(net.stages[0])[:4]).eval()
        assert stem(torch.randn(1, 3, 114, 114)).shape[-2:] == (28, 28)


def test_downsampling_blocks_stride_their_1x1_reduce_conv_and_projection_not_the_3x3(net):
    for s, layer in enumerate(_layers(net)):
        for b, block in enumerate(layer):
            down = 2 if s > 0 and b == 0 else 1
            assert block.conv1.stride == (down, down)
            assert block.conv2.stride == (1, 1) and block.conv3.stride == (1, 1)
            if b == 0:
                assert block.downsample[0].stride == (down, down)


def test_a_strided_block_reads_only_the_even_pixels_of_its_input(net):
    # Both paths of conv3_1 start with a 1×1 stride-2 conv: odd rows/columns of its input cannot matter.
    # A stride on the 3×3 (torchvision v1.5) would let them through.
    block = net.stages[1][0].eval()
    torch.manual_seed(2)
    x = torch.randn(1, 256, 8, 8)
    odd = x.clone()
    odd[:, :, 1::2, :] += 5.0
    odd[:, :, :, 1::2] -= 5.0
    even = x.clone()
    even[:, :, 0::2, 0::2] += 5.0
    with torch.no_grad():
        assert torch.equal(block(odd), block(x))
        assert not torch.allclose(block(even), block(x))


def test_convs_are_bias_free_and_batchnorm_eps_is_1e_5(net):
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    norms = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(convs) == len(norms) == 53
    assert all(c.bias is None for c in convs)
    assert all(n.eps == 1e-5 and n.momentum == 0.1 and n.affine for n in norms)


def test_conv5_3_has_two_dropouts_before_its_3x3_and_increase_batchnorms(net):
    drops = [m for m in net.modules() if isinstance(m, nn.Dropout)]
    assert len(drops) == 2 and all(d.p == 0.5 for d in drops)
    block = net.stages[3][2]
    assert all(any(d is m for m in block.modules()) for d in drops)
    order = []
    hooks = [m.register_forward_hook(lambda mod, i, o, n=n: order.append(n)) for n, m in block.named_children()]
    with torch.no_grad():
        block.eval()(torch.randn(1, 2048, 2, 2))
    for h in hooks:
        h.remove()
    kinds = [type(getattr(block, n)).__name__ for n in order]
    convs = [i for i, n in enumerate(order) if n.startswith("conv")]
    assert kinds[convs[1] + 1] == "Dropout" and kinds[convs[1] + 2] == "BatchNorm2d"  # conv5_3_3x3 -> drop -> bn
    assert kinds[convs[2] + 1] == "Dropout" and kinds[convs[2] + 2] == "BatchNorm2d"  # 1x1_increase -> drop -> bn
    assert kinds[convs[0] + 1] == "BatchNorm2d"  # no dropout after the reduce conv


def test_dropout_is_active_in_train_mode_and_off_in_eval(net):
    block = net.stages[3][2]
    seen = []
    hook = block.drop2.register_forward_hook(lambda m, i, o: seen.append((i[0].detach(), o.detach())))
    x = torch.randn(2, 3, 64, 64)
    try:
        with torch.no_grad():
            net.train()
            torch.manual_seed(3)
            a = net(x)
            b = net(x)
            net.eval()
            c, d = net(x), net(x)
    finally:
        hook.remove()
        net.eval()
    assert not torch.allclose(a, b)  # BatchNorm in train mode is deterministic: the difference is dropout
    assert torch.equal(c, d)
    inp, out = seen[0]
    dropped = out == 0
    assert 0.3 < dropped.float().mean() < 0.7
    assert torch.allclose(out[~dropped], 2 * inp[~dropped])
    inp, out = seen[2]
    assert torch.equal(inp, out)


def test_dropout_zero_makes_train_mode_deterministic():
    torch.manual_seed(0)
    net = build_backbone({"name": "resnet50_ferplus", "dropout": 0.0}).train()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(net(x), net(x))


def test_dag_names_address_the_parameters_with_the_dag_shapes(net):
    state = _dag_state(net)
    assert {k: tuple(state[k].shape) for k in DAG_SAMPLE_SHAPES} == DAG_SAMPLE_SHAPES
    assert len(state) == 53 + 53 * 4  # 53 conv weights; 53 BNs with weight, bias, running mean and var


def test_dag_state_dict_round_trips_through_a_file_to_identical_outputs(net, tmp_path):
    state = _randomised(_dag_state(net))
    state["classifier.weight"] = torch.randn(8, 2048, 1, 1)  # the FER+ head: ignored
    state["classifier.bias"] = torch.randn(8)
    path = tmp_path / "resnet50_ferplus_dag.pth"
    torch.save(state, path)
    loaded = build_backbone({"name": "resnet50_ferplus", "pretrained": str(path)}).eval()
    assert torch.equal(loaded.stages[3][2].bn3.running_var, state["conv5_3_1x1_increase_bn.running_var"])
    assert torch.equal(loaded.stages[1][0].downsample[0].weight, state["conv3_1_1x1_proj.weight"])
    reference = resnet50_ferplus().eval()  # the same values placed module by module, by the walk above
    for name, module in _dag_modules(reference).items():
        module.load_state_dict({k.split(".")[-1]: v for k, v in state.items() if k.rpartition(".")[0] == name},
                               strict=False)
    x = torch.randn(2, 3, 112, 112)
    with torch.no_grad():
        assert torch.equal(loaded(x), reference(x))


@pytest.mark.parametrize("prefix", ["", "backbone.model.", "module.backbone.model.", "backbone.backbone.model."])
def test_the_converter_accepts_the_multitask_prefixes_and_drops_classifiers_and_heads(net, prefix):
    dag = _dag_state(net, with_num_batches_tracked=True)
    state = {prefix + k: v for k, v in dag.items()}
    state[prefix + "classifier.weight"] = torch.zeros(8, 2048, 1, 1)
    state["classifier.0.bn0.weight"] = torch.zeros(2048)  # a multitask head, outside the backbone
    ours = convert_dag_state_dict(state)
    assert ours.keys() == net.state_dict().keys()
    assert torch.equal(ours["stages.0.0.weight"], dag["conv1_7x7_s2.weight"])
    assert torch.equal(ours["stages.2.5.bn3.running_mean"], dag["conv4_6_1x1_increase_bn.running_mean"])


def test_a_missing_file_and_torchvision_weights_are_refused_in_one_sentence(tmp_path):
    with pytest.raises(FermixError, match="does not exist"):
        build_backbone({"name": "resnet50_ferplus", "pretrained": str(tmp_path / "nope.pth")})
    with pytest.raises(FermixError, match="different network"):
        build_backbone({"name": "resnet50_ferplus", "pretrained": "torchvision"})
    with pytest.raises(FermixError, match="probability"):
        build_backbone({"name": "resnet50_ferplus", "dropout": 1.5})


def _save(tmp_path, state):
    path = tmp_path / "w.pth"
    torch.save(state, path)
    return str(path)


def test_missing_foreign_or_misshapen_weights_raise_fermix_errors(net, tmp_path):
    before = {k: v.clone() for k, v in net.state_dict().items()}
    dag = _dag_state(net)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a torch file")
    with pytest.raises(FermixError, match="not a readable state dict"):
        load_dag_weights(net, str(garbage))
    lacking = {k: v for k, v in dag.items() if k != "conv4_2_3x3.weight"}
    with pytest.raises(FermixError, match=r"lacks 1 resnet50_ferplus weights \(first: conv4_2_3x3.weight\)"):
        load_dag_weights(net, _save(tmp_path, lacking))
    torchvision_layout = {"conv1.weight": dag["conv1_7x7_s2.weight"], "fc.weight": torch.zeros(1000, 2048)}
    with pytest.raises(FermixError, match="no resnet50_ferplus_dag weights"):
        load_dag_weights(net, _save(tmp_path, torchvision_layout))
    senet = dict(dag, **{"conv2_1_1x1_down.weight": torch.zeros(16, 256, 1, 1)})
    with pytest.raises(FermixError, match="another network"):
        load_dag_weights(net, _save(tmp_path, senet))
    misshapen = dict(dag, **{"conv5_3_3x3.weight": torch.zeros(512, 512, 1, 1)})
    shapes = r"conv5_3_3x3\.weight is \(512, 512, 1, 1\), expected \(512, 512, 3, 3\)"
    with pytest.raises(FermixError, match="wrong shape.*" + shapes):
        load_dag_weights(net, _save(tmp_path, misshapen))
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())  # nothing half-loaded
