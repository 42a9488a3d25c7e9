"""Fixtures shared across the suite: running the `fermix` CLI in a fresh process, and composing
configs in-process with Hydra's compose API (as lightning-hydra-template tests do)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest


def run_fermix(args: Sequence[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """`python -m fermix ARGS` in a fresh process, as a user would run it (no debug tracebacks)."""
    env = {k: v for k, v in os.environ.items() if k not in ("FERMIX_DEBUG", "HYDRA_FULL_ERROR")}
    env["PYTHONWARNINGS"] = "ignore"
    return subprocess.run(
        [sys.executable, "-m", "fermix", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def assert_one_sentence_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    """Bad input: non-zero exit, a `fermix: error:` line naming the problem, and no traceback."""
    assert result.returncode != 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("fermix: error:")]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


class InProcessResult(subprocess.CompletedProcess):
    pass


@pytest.fixture
def fermix_main(monkeypatch, capsys):
    """`fermix ARGS` through `fermix.cli.main` in this process: the same code path as the console
    script, without paying torch's import time again (for the many bad-input checks)."""

    def run(args: Sequence[str], cwd: Path) -> subprocess.CompletedProcess:
        from fermix.cli import main

        monkeypatch.chdir(cwd)
        monkeypatch.delenv("FERMIX_DEBUG", raising=False)
        capsys.readouterr()
        try:
            code = main(list(args))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        out = capsys.readouterr()
        return InProcessResult(list(args), code, out.out, out.err)

    return run
