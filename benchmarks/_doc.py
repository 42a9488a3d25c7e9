"""Shared by the benchmarks: the machine line, and writing one `## Section` of docs/performance.md."""

from __future__ import annotations

import os
import platform
import re
import time
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "performance.md"
HEADER = "# Performance\n\nMeasured numbers; each section says which script wrote it and on what machine.\n"


def machine() -> str:
    """`2026-11-22; AMD EPYC ..., 2 logical CPUs; Python 3.11.7, torch 2.14.1; load average 0.1`."""
    import torch

    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{time.strftime('%Y-%m-%d')}; {cpu}, {os.cpu_count()} logical CPUs; Python {platform.python_version()}, "
            f"torch {torch.__version__}, {torch.get_num_threads()} torch threads; 1-min load average {load:.1f} "
            f"before the run")  # fmt: skip


def write_section(section: str, text: str) -> None:
    """Replace `section` (a `## ...` heading line) and its body in docs/performance.md, or append it."""
    from fermix.utils.io import atomic_write_text

    old = DOC.read_text(encoding="utf-8") if DOC.is_file() else HEADER
    pattern = re.compile(rf"^{re.escape(section)}\n.*?(?=^## |\Z)", re.S | re.M)
    body = text.rstrip("\n") + "\n\n"
    new = pattern.sub(lambda _: body, old) if pattern.search(old) else old.rstrip("\n") + "\n\n" + body
    atomic_write_text(DOC, new.rstrip("\n") + "\n")
