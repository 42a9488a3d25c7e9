import argparse
from pathlib import Path

import pytest
import torch

from fermix.engine import checkpoint as ck
from fermix.errors import FermixError


def _fermix_ckpt(**extra):
    return {"state_dict": {"method.w": torch.ones(2)},
            "fermix": {"format": ck.FORMAT, "format_version": ck.FORMAT_VERSION, **extra}}


def test_a_failed_save_leaves_the_previous_file_intact_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    ck.save_atomic(_fermix_ckpt(epoch=1), path)

    def crash(obj, f, *a, **kw):
        Path(f).write_bytes(b"half a checkpoint")
        raise KeyboardInterrupt  # as if the job were killed mid-write

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        ck.save_atomic(_fermix_ckpt(epoch=2), path)
    monkeypatch.undo()
    assert ck.load_checkpoint(path)["fermix"]["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_rng_states_survive_a_weights_only_round_trip(tmp_path):
    torch.manual_seed(3)
    path = tmp_path / "x.ckpt"
    ck.save_atomic(_fermix_ckpt(rng=ck.rng_states()), path)
    expected = torch.rand(3)
    torch.manual_seed(99)
    ck.set_rng_states(ck.load_checkpoint(path)["fermix"]["rng"])
    assert torch.equal(torch.rand(3), expected)


def test_checkpoint_holding_a_pickled_object_is_refused(tmp_path):
    path = tmp_path / "pickled.ckpt"
    torch.save({**_fermix_ckpt(), "args": argparse.Namespace(lr=0.1)}, path)
    with pytest.raises(FermixError, match="more than tensors"):
        ck.load_checkpoint(path)


def test_checkpoint_from_a_newer_format_is_refused(tmp_path):
    path = tmp_path / "new.ckpt"
    ckpt = _fermix_ckpt()
    ckpt["fermix"]["format_version"] = ck.FORMAT_VERSION + 1
    torch.save(ckpt, path)
    with pytest.raises(FermixError, match="newer fermix"):
        ck.load_checkpoint(path)


def test_provenance_is_plain_data():
    prov = ck.provenance()
    assert all(type(v) in (str, type(None)) for v in prov.values())
