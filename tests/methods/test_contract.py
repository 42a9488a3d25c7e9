"""Properties every registered method must have (parametrized over the registry, as timm does)."""

import itertools

import pytest
import torch

from fermix.data.info import DataInfo
from fermix.data.label_spaces import LabelSpace
from fermix.errors import FermixError
from fermix.methods.base import Method
from fermix.registry import METHODS

FIVE = LabelSpace("toy5", ("a", "b", "c", "d", "e"))


AUS = ["AU1", "AU2", "AU4", "AU6", "AU12", "AU15", "AU20", "AU25"]


def _info() -> DataInfo:
    keys = frozenset({"image", "expr", "au", "va", "sample_id", "subject"})
    return DataInfo(label_space=FIVE, keys=keys, image_size=32, extras={"au_names": AUS})


def _batch(n: int = 4) -> dict:
    g = torch.Generator().manual_seed(n)
    au = torch.randint(0, 2, (n, len(AUS)), generator=g).float()
    au[1] = float("nan")  # an unlabelled row, as incomplete-label datasets have
    return {
        "image": torch.randn(n, 3, 32, 32, generator=g),
        "expr": torch.tensor([0, 4, -1, 2, 1, 3, 0, 4, 2, 1, 3][:n]),  # n=11: every class twice (DMUE needs it)
        "au": au,
        "va": torch.rand(n, 2, generator=g) * 2 - 1,
        "landmarks": torch.rand(n, 68, 2) * 32,  # pixel coordinates of `image` (methods that draw maps)
        "sample_id": [f"s{i}" for i in range(n)],
        "index": torch.arange(n),
        "seq_len": 1,  # sequence methods read B·T frames as windows of seq_len (here: one frame each)
    }


def _rows(value, rows: torch.Tensor):
    if torch.is_tensor(value):
        return value[rows]
    return [value[i] for i in rows] if isinstance(value, list) else value


def _training_batch(method: Method, batch: dict) -> dict:
    """What the engine hands `training_step`: the batch, or {source: the rows its sampler draws}."""
    labels = {"expr": batch["expr"].numpy(), "au": batch["au"].numpy(), "va": batch["va"].numpy()}
    sources = method.train_sources(labels, seed=0)
    if not sources:
        return batch
    out = {}
    for name, source in sources.items():
        rows = torch.tensor([i for i, _ in itertools.islice(iter(source.sampler), 4)])
        out[name] = {k: _rows(v, rows) for k, v in batch.items()}
    return out


def _extra_options(name: str, tmp_path) -> dict:
    """Options a method cannot be built or trained without (the RNN variant needs a trained CNN)."""
    if name == "multitask_rnn":
        from tests.methods.multitask.test_sequence import cnn_checkpoint

        path, _ = cnn_checkpoint(tmp_path / "cnn.ckpt", backbone={"name": "small_cnn", "width": 8}, data_info=_info())
        return {"cnn_checkpoint": str(path)}
    return {}


def _build(name: str, tmp_path) -> Method:
    cls = METHODS.get(name)
    config = cls.make_config({"name": name, **_extra_options(name, tmp_path)})
    return cls(config, _info(), {"name": "small_cnn", "width": 8})


IMAGE_METHODS = [n for n in METHODS.names() if "multimodal" not in METHODS.get(n).tasks]
MULTIMODAL_METHODS = [n for n in METHODS.names() if "multimodal" in METHODS.get(n).tasks]


def _mm_info() -> DataInfo:
    modalities = {"text": [8, 12], "audio": [8, 6], "vision": [8, 5]}
    keys = frozenset({"text", "audio", "vision", "expr", "sample_id"})
    return DataInfo(label_space=FIVE, keys=keys, extras={"task": "iemocap4", "modalities": modalities})


def _mm_batch(n: int) -> dict:
    g = torch.Generator().manual_seed(n)
    shapes = _mm_info().extras["modalities"]
    batch = {k: torch.randn(n, *shape, generator=g) for k, shape in shapes.items()}
    batch.update(expr=torch.randint(0, 2, (n, FIVE.num_classes), generator=g), index=torch.arange(n))
    batch["sample_id"] = [f"s{i}" for i in range(n)]
    return batch


@pytest.mark.parametrize("name", MULTIMODAL_METHODS)
def test_multimodal_method_is_sized_from_the_data_and_trains(name):
    cls = METHODS.get(name)
    method = cls(cls.make_config({"name": name}), _mm_info(), {})
    assert method.eval().predict(_mm_batch(4))["logits"].shape == (4, 2 * FIVE.num_classes)  # a binary pair per label
    terms = method.train().training_step(_mm_batch(6))
    assert terms and all(v.ndim == 0 and torch.isfinite(v) for v in terms.values())
    sum(v for v in terms.values() if v.requires_grad).backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in method.parameters())


@pytest.mark.parametrize("name", IMAGE_METHODS)
def test_method_is_sized_from_the_label_space(name, tmp_path):
    method = _build(name, tmp_path).eval()
    out = method.predict(_batch())
    assert out["expr_logits"].shape == (4, FIVE.num_classes)


@pytest.mark.parametrize("name", IMAGE_METHODS)
def test_training_step_returns_named_differentiable_terms(name, tmp_path):
    method = _build(name, tmp_path)
    if method.stages():  # staged methods train inside a stage (the engine begins it)
        method.begin_stage(method.stages()[0])
    method.train()
    if not method.automatic_optimization:
        pytest.skip("manual optimisation is exercised through the engine")
    terms = method.training_step(_training_batch(method, _batch(11)))
    assert terms and all(v.ndim == 0 and torch.isfinite(v) for v in terms.values())
    sum(v for v in terms.values() if v.requires_grad).backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in method.parameters())


@pytest.mark.parametrize("name", METHODS.names())
def test_method_declares_its_contract(name):
    cls = METHODS.get(name)
    assert cls.name == name
    assert {"image"} <= set(cls.requires) or {"text", "audio", "vision"} & set(cls.requires)
    assert set(cls.tasks) <= {"expr", "au", "va", "multimodal"}


@pytest.mark.parametrize("name", METHODS.names())
def test_unknown_method_option_is_a_clear_error(name):
    with pytest.raises(FermixError, match="no option 'nonsense'"):
        METHODS.get(name).make_config({"name": name, "nonsense": 1})


@pytest.mark.parametrize("name", IMAGE_METHODS)
def test_channels_last_model_predicts_the_same_and_trains(name, tmp_path):
    """`compute.channels_last` (engine/compute.py) must not break a method's reshapes or change its outputs."""
    torch.manual_seed(0)
    method = _build(name, tmp_path).eval()
    batch = _batch(11)
    reference = method.predict(batch)
    method.to(memory_format=torch.channels_last)
    assert any(p.dim() == 4 and p.is_contiguous(memory_format=torch.channels_last) for p in method.parameters())
    for key, value in method.predict(batch).items():
        if torch.is_tensor(value) and value.is_floating_point():
            torch.testing.assert_close(value, reference[key], rtol=1e-4, atol=1e-5, equal_nan=True, msg=name)
    if method.stages():
        method.begin_stage(method.stages()[0])
    if method.automatic_optimization:
        terms = method.train().training_step(_training_batch(method, batch))
        sum(v for v in terms.values() if v.requires_grad).backward()
        assert all(torch.isfinite(v) for v in terms.values())
