import subprocess
import sys
import time

import pytest
import yaml

from fermix.cli import recipe_note
from tests.conftest import assert_one_sentence_error, run_fermix


def test_help_answers_without_importing_torch():
    code = (
        "import sys; from fermix.cli import main; main(['--help']); "
        "assert 'torch' not in sys.modules and 'lightning' not in sys.modules"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert "usage: fermix" in out.stdout and "train" in out.stdout and "test" in out.stdout


def test_list_prints_every_registry_without_torch(tmp_path):
    code = (
        "import sys; from fermix.cli import main; main(['list']); "
        "assert 'torch' not in sys.modules"
    )
    start = time.monotonic()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert time.monotonic() - start < 30  # generous: the point is "no torch import", checked above
    for expected in ("methods:", "erm", "datasets:", "imagefolder", "backbones:", "resnet18", "small_cnn"):
        assert expected in out.stdout
    presets = [line.split()[0] for line in out.stdout.splitlines() if "preset of synthetic:" in line]
    assert presets == ["synthetic_bias", "synthetic_identity", "synthetic_noisy", "synthetic_partial"]  # config files


def test_list_one_kind(tmp_path):
    out = run_fermix(["list", "methods"], tmp_path)
    assert out.returncode == 0
    assert "erm" in out.stdout and "backbones:" not in out.stdout


def test_list_unknown_kind_is_one_sentence(tmp_path):
    assert_one_sentence_error(run_fermix(["list", "models"], tmp_path), "models")


def test_unknown_command_is_one_sentence(tmp_path):
    assert_one_sentence_error(run_fermix(["fit"], tmp_path), "unknown command `fit`")


def test_test_without_ckpt_is_one_sentence(tmp_path):
    assert_one_sentence_error(run_fermix(["test"], tmp_path), "ckpt=PATH")


def test_test_with_missing_ckpt_is_one_sentence(tmp_path):
    assert_one_sentence_error(run_fermix(["test", "ckpt=nope.ckpt"], tmp_path), "nope.ckpt", "does not exist")


def test_test_refuses_overrides_that_change_the_model(tmp_path):
    ckpt = tmp_path / "x.ckpt"
    ckpt.write_bytes(b"")
    for override in ("method=erm", "backbone=resnet18", "backbone.width=8", "data.image_size=32", "seed=3"):
        result = run_fermix(["test", f"ckpt={ckpt}", override], tmp_path)
        assert_one_sentence_error(result, override, "would change the model")


def test_python_dash_m_works(tmp_path):
    out = run_fermix(["--version"], tmp_path)
    assert out.returncode == 0 and out.stdout.startswith("fermix ")


def test_help_lists_preprocess(tmp_path):
    out = run_fermix(["--help"], tmp_path)
    assert out.returncode == 0 and "preprocess" in out.stdout and "fermix preprocess dataset=" in out.stdout


def test_preprocess_with_missing_root_is_one_sentence_in_a_fresh_process(tmp_path):
    result = run_fermix(["preprocess", "dataset=imagefolder", "dataset.root=nowhere", "preprocess.out=out"], tmp_path)
    assert_one_sentence_error(result, "dataset root nowhere does not exist")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # Hydra's files stay inside the output folder


# --- recipes: `method=X dataset=Y` names the experiment that holds the pair's recipe, and changes nothing ---
NOTE = "note: the paper recipe for this pair is experiment={} (method and dataset defaults are used as given)"


@pytest.mark.parametrize(
    ("args", "pair"),
    [
        (["method=iern", "dataset=synthetic_bias"], "iern_synthetic_bias"),
        (["method=dmue"], "dmue_synthetic"),  # the default dataset completes the pair
        (["dataset=synthetic_partial", "method=multitask", "trainer.max_epochs=1"], "multitask_synthetic_partial"),
        (["method=iern", "dataset=synthetic_bias", "experiment=iern_synthetic_bias"], None),  # the recipe is chosen
        (["method=erm", "dataset=synthetic_bias"], None),  # a pair without a recipe
        (["-m", "method=iern,erm", "dataset=synthetic_bias"], None),  # a sweep
        (["trainer.max_epochs=1"], None),
        (["method=iern", "dataset=synthetic_bias", "--help"], None),
    ],
)
def test_recipe_note_names_the_experiment_of_the_pair(args, pair):
    assert recipe_note(args) == (NOTE.format(pair) if pair else None)


def test_train_of_a_pair_with_a_recipe_prints_one_note_and_composes_without_it(tmp_path):
    out = run_fermix(["train", "method=iern", "dataset=synthetic_bias", "--cfg", "job"], tmp_path)
    assert out.returncode == 0, out.stderr
    notes = [line for line in out.stderr.splitlines() if line.startswith("note:")]
    assert notes == [NOTE.format("iern_synthetic_bias")]
    cfg = yaml.safe_load(out.stdout)
    assert cfg["method"]["name"] == "iern" and cfg["dataset"]["name"] == "synthetic_bias"
    assert cfg["data"]["batch_size"] == 64 and cfg["trainer"]["max_epochs"] == 10  # train.yaml's, not the recipe's
