import numpy as np
import pytest

from fermix.data.synthetic import store
from fermix.data.synthetic.config import SyntheticConfig

CFG = SyntheticConfig(train_per_cell=2, val_per_cell=1, test_per_cell=1)


def test_second_load_reads_the_cache_without_rendering(tmp_path, monkeypatch):
    first = store.load_or_build(CFG, tmp_path)

    def boom(*_a, **_k):
        raise AssertionError("rendered again")

    monkeypatch.setattr(store, "render_split", boom)
    second = store.load_or_build(CFG, tmp_path)
    for split in first:
        np.testing.assert_array_equal(np.asarray(second[split].images), first[split].images)
        assert isinstance(second[split].images, np.memmap)


def test_a_changed_config_never_reads_a_stale_cache(tmp_path):
    a = store.load_or_build(CFG, tmp_path)
    changed = SyntheticConfig(train_per_cell=2, val_per_cell=1, test_per_cell=1, lighting=0.0)
    assert changed.key() != CFG.key()
    b = store.load_or_build(changed, tmp_path)
    assert not np.array_equal(np.asarray(a["train"].images), np.asarray(b["train"].images))
    assert len(list(tmp_path.iterdir())) == 2


def test_cache_key_ignores_nothing_that_changes_the_data():
    keys = {SyntheticConfig(**{name: value}).key() for name, value in
            [("seed", 1), ("noise", 0.2), ("bias", "bias100"), ("test", "balanced"), ("image_size", 96)]}
    assert len(keys) == 5 and CFG.key() not in keys


def test_an_interrupted_build_is_rebuilt_not_half_read(tmp_path):
    store.load_or_build(CFG, tmp_path)
    folder = store.cache_folder(CFG, tmp_path)
    (folder / "config.json").unlink()  # as if killed before the build finished
    (folder / "val_meta.npz").write_bytes(b"garbage")
    again = store.load_or_build(CFG, tmp_path)
    assert len(again["val"]) == 21


def test_a_damaged_complete_cache_is_one_sentence(tmp_path):
    from fermix.errors import FermixError

    store.load_or_build(CFG, tmp_path)
    (store.cache_folder(CFG, tmp_path) / "train_images.npy").write_bytes(b"garbage")
    with pytest.raises(FermixError, match=r"synthetic cache .* is damaged"):
        store.load_or_build(CFG, tmp_path)


def test_concurrent_builders_share_one_cache(tmp_path):
    """Two processes (DDP ranks under torchrun) building the same config at once: one builds,
    the other waits on the lock and reads the finished cache."""
    import subprocess
    import sys

    code = (
        "import sys; from fermix.data.synthetic import store; from fermix.data.synthetic.config import SyntheticConfig;"
        "d = store.load_or_build(SyntheticConfig(train_per_cell=2, val_per_cell=1, test_per_cell=1), sys.argv[1]);"
        "print(int(d['train'].images.sum()))"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    outputs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert outputs[0] == outputs[1] != ""
    assert len([p for p in tmp_path.iterdir() if p.is_dir()]) == 1
    assert not list(tmp_path.rglob(".*.tmp-*"))  # no half-written files left behind
