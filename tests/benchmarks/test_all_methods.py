"""The summary table of benchmarks/all_methods.py, built from fabricated results.json files (no training)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def am() -> Any:
    sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location("all_methods", BENCH / "all_methods.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["all_methods"] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("all_methods", None)
    sys.path.remove(str(BENCH))


def _row(model: str, metric: str, values: list[float], condition: str = "") -> dict[str, Any]:
    from _results import row

    return row(model, metric, dict(enumerate(values)), condition)


def _iern(ood: list[float]) -> dict[str, Any]:
    rows = [
        _row("erm", "ood_acc", [0.50, 0.55, 0.60]),
        _row("iern", "ood_acc", ood),
        _row("erm", "iid_acc", [0.90, 0.90, 0.90]),
        _row("iern", "iid_acc", [0.89, 0.90, 0.88]),
    ]
    return {"benchmark": "iern_synthetic", "trunk": "identity", "budget": {}, "rows": rows}


def test_effect_is_paired_by_seed(am: Any) -> None:
    p = am.METHODS["iern"].predictions[0]
    e = am.effect(_iern([0.60, 0.70, 0.65]), p)
    assert e["seeds"] == [0, 1, 2] and e["n"] == 3
    assert e["values"] == pytest.approx([0.10, 0.15, 0.05])
    assert e["mean"] == pytest.approx(0.10) and e["std"] == pytest.approx(0.05)


def test_rule(am: Any) -> None:
    rise, cost = am.METHODS["iern"].predictions[:2]
    assert am.verdict(rise, am.effect(_iern([0.60, 0.70, 0.65]), rise), quick=False) == "held"
    assert am.verdict(rise, am.effect(_iern([0.45, 0.75, 0.66]), rise), quick=False).startswith("not shown")
    assert am.verdict(rise, am.effect(_iern([0.40, 0.50, 0.60]), rise), quick=False) == "did not hold"
    assert am.verdict(cost, am.effect(_iern([0.4] * 3), cost), quick=False) == "held"  # IID within 3 points
    assert am.verdict(rise, am.effect(_iern([0.60, 0.70, 0.65]), rise), quick=True).startswith("quick mode")
    assert am.verdict(rise, None, quick=False) == "not run"
    falls = am.Prediction("falls", "iern", "ood_acc", "erm", "-")
    assert am.verdict(falls, am.effect(_iern([0.40, 0.45, 0.50]), falls), quick=False) == "held"
    two = {"rows": [_row("erm", "ood_acc", [0.5, 0.5]), _row("iern", "ood_acc", [0.9, 0.9])]}
    assert am.verdict(rise, am.effect(two, rise), quick=False) == "undecided (n = 2)"
    auroc = am.Prediction("auroc", "dmue", "auroc", None, ">=", 0.6, "noise 20%")
    res = {"rows": [_row("dmue", "auroc", [0.9, 0.95, 0.92], "noise 20%")]}
    assert am.verdict(auroc, am.effect(res, auroc), quick=False) == "held"


def test_summary_page(am: Any) -> None:
    results = {("iern", "identity"): _iern([0.60, 0.70, 0.65])}
    text = am.build_summary(results, list(am.TRUNKS), quick=False, command="python benchmarks/all_methods.py")
    for name in am.METHODS:
        assert f"## {name}" in text
    line = next(x for x in text.splitlines() if x.startswith("| identity-pretrained trunk | OOD accuracy rises"))
    assert "+0.100 ± 0.050 (n = 3)" in line and "0.650 vs 0.550" in line and line.endswith("| held |")
    assert "| random weights | — | — | — | not run by this command; earlier 3-seed table on [iern.md]" in text
    quick = am.build_summary(results, list(am.TRUNKS), quick=True, command="x")
    assert "QUICK MODE" in quick.splitlines()[0] and "| held |" not in quick


def test_steps_follow_the_priority_order(am: Any) -> None:
    order = [(m, a[a.index("--conditions") + 1 :][:1] if m == "dmue" else []) for m, _, a in am.steps(
        False, ["identity"], list(am.METHODS), [0, 1, 2])]  # fmt: skip
    assert [m for m, _ in order] == ["iern", "dmue", "au_align", "multitask", "dmue"]
    quick = am.steps(True, ["none", "identity"], list(am.METHODS), [0])
    assert sum(m == "causalmer" for m, _, _ in quick) == 1  # no image trunk: trunk none only


def test_quick_mode_pretrains_its_trunks_for_one_epoch_and_the_full_grid_uses_the_default_budget(am: Any) -> None:
    quick = am.steps(True, ["none", "identity"], ["iern", "dmue"], [0])
    assert all(("--pretrain-epochs" in a) == (t != "none") for _, t, a in quick)
    assert all(a[a.index("--pretrain-epochs") + 1] == "1" for _, t, a in quick if t != "none")
    assert not any("--pretrain-epochs" in a for _, _, a in am.steps(False, ["identity"], list(am.METHODS), [0]))


def test_causalmer_layout_is_read_as_shared_rows(am: Any) -> None:
    runs = [
        {"selection": sel, "regime": "interaction", "model": model, "seed": s,
         "test": {"random": {"avg_acc": base + s / 100, "top1_acc": base / 2}}}
        for sel in ("val_shortcut", "val_free") for model, base in (("mult", 0.7), ("causalmer_sum", 0.8))
        for s in range(3)
    ]  # fmt: skip
    rows = am.shared_shape({"runs": runs})["rows"]
    assert {(r["condition"], r["metric"]) for r in rows} == {
        ("interaction", "random"), ("interaction", "random_top1"),
        ("interaction, val_free", "random"), ("interaction, val_free", "random_top1"),
    }  # fmt: skip
    e = am.effect({"rows": rows}, am.METHODS["causalmer"].predictions[0])
    assert e["n"] == 3 and e["mean"] == pytest.approx(0.1)


def test_causalmer_softmax_head_runs_are_their_own_condition(am: Any) -> None:
    runs = [
        {"selection": "val_shortcut", "head": head, "regime": "interaction", "model": model, "seed": s,
         "test": {"random": {"avg_acc": 0.0, "top1_acc": top1}}}
        for head in ("pairs", "softmax") for model, top1 in (("mult", 0.3), ("causalmer_sum", 0.5))
        for s in range(3)
    ]  # fmt: skip
    rows = am.shared_shape({"runs": runs})["rows"]
    assert {r["condition"] for r in rows} == {"interaction", "interaction softmax"}
    softmax = next(p for p in am.METHODS["causalmer"].predictions if p.condition == "interaction softmax")
    e = am.effect({"rows": rows}, softmax)
    assert softmax.metric == "random_top1" and e["n"] == 3 and e["mean"] == pytest.approx(0.2)
