"""A method brings its own evaluation protocol to `fermix test` without any engine change.

The toy method below declares a protocol (evaluate again on horizontally flipped faces) with its own
key, `eval.flip`; registering the method is all it takes for `fermix test ckpt=... eval.flip=true` to
run it and record its result in summary.json, and for a key the checkpoint does not offer to be refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import pytest

from fermix.errors import FermixError
from fermix.methods.base import MethodConfig
from fermix.protocols import EvalContext, EvalProtocol, declared, describe
from fermix.registry import DATASETS, METHODS
from tests.engine.runner import compose_job, train_toy_method
from tests.engine.toy_methods import PixelLinear


class FlipTest(EvalProtocol):
    key = "eval.flip"
    summary_key = "flipped"
    help = "true: evaluate again on mirrored faces"
    calls: ClassVar[list[str]] = []

    def run(self, value, ctx: EvalContext):
        if value is not True:
            raise FermixError(f"eval.flip={value} must be true or false")
        FlipTest.calls.append(ctx.split)
        flipped = ctx.evaluate(lambda batch: {**batch, "image": batch["image"].flip(-1)}, ctx.run_dir / "flipped")
        ctx.log(f"flipped accuracy {flipped['metrics']['acc']:.3f}")
        return {"metrics": flipped["metrics"], "num_samples": flipped["num_samples"]}


@dataclass
class FlipConfig(MethodConfig):
    pass


class FlipAware(PixelLinear):
    """A linear classifier on the pixels: mirroring the faces changes its predictions."""

    name = "flip_aware"
    Config = FlipConfig
    evaluation_protocols = (FlipTest,)

    def predict(self, batch):
        return {"expr_logits": self.logits(batch)}


@pytest.fixture
def flip_run(monkeypatch, tmp_path):
    return train_toy_method(monkeypatch, tmp_path, "flip_aware", "tests.test_protocols:FlipAware")


def test_a_toy_methods_protocol_runs_under_its_own_key_and_lands_in_the_summary(flip_run, tmp_path):
    from fermix.engine.testing import run_test

    FlipTest.calls.clear()
    plain = run_test(compose_job("test", [f"ckpt={flip_run}"], tmp_path / "plain"))
    assert "flipped" not in plain and FlipTest.calls == []  # off unless asked for
    tested = run_test(compose_job("test", [f"ckpt={flip_run}", "eval.flip=true"], tmp_path / "flip"))
    assert FlipTest.calls == ["test"]
    assert tested["metrics"]["test"] == plain["metrics"]["test"]  # the split's own evaluation is unchanged
    assert tested["flipped"]["num_samples"] == plain["num_samples"]
    assert (tmp_path / "flip" / "flipped" / "predictions_test.csv").is_file()
    # a mirrored face gives a linear pixel classifier other logits: the protocol really re-evaluated
    flipped_rows = (tmp_path / "flip" / "flipped" / "predictions_test.csv").read_text()
    assert flipped_rows != (tmp_path / "flip" / "predictions_test.csv").read_text()


def test_a_protocol_key_the_checkpoint_does_not_offer_is_refused_in_one_sentence(flip_run, fermix_main, tmp_path):
    out = fermix_main(["test", f"ckpt={flip_run}", "eval.remove=all"], tmp_path)
    assert out.returncode == 1
    assert "`eval.remove=all` is an evaluation option of method causalmer and method mult" in out.stderr
    assert "its evaluation options: eval.flip (true: evaluate again on mirrored faces)" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    out = fermix_main(["test", f"ckpt={flip_run}", "eval.nothing=1"], tmp_path)
    assert out.returncode == 1 and "would change the model" in out.stderr


def test_a_bad_protocol_value_is_one_sentence(flip_run, fermix_main, tmp_path):
    out = fermix_main(["test", f"ckpt={flip_run}", "eval.flip=maybe", f"hydra.run.dir={tmp_path / 'e'}"], tmp_path)
    assert out.returncode == 1 and out.stderr.strip() == "fermix: error: eval.flip=maybe must be true or false"


def test_the_seed_protocols_are_declared_by_their_owners():
    assert set(declared(METHODS.get("causalmer"))) == {"eval.remove"}
    assert set(declared(METHODS.get("mult"))) == {"eval.remove"}
    assert set(declared(DATASETS.get("affwild2"))) == {"abaw_submission"}
    assert declared(METHODS.get("erm"), DATASETS.get("synthetic")) == {}
    assert describe([]) == "none"
