"""Pool finished runs over folds as IERN reports MixBasic (methods/iern.md §5.2): per class
Σ TP / Σ N over the runs, All = pooled accuracy, plus per-run accuracies and their mean ± std.

    python scripts/pooled_folds.py runs/erm_mixbasic/multirun_2025-01-01_12-00-00
    python scripts/pooled_folds.py 'runs/erm_mixbasic/multirun_*/[0-2]' --split test --out reports/

Arguments are run dirs, sweep dirs (their finished job dirs are used) or globs of either. Prints
the markdown table and writes pooled_<split>.md/.csv into --out, by default the runs' common
parent (the sweep dir of a multirun).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fermix.errors import FermixError
from fermix.report.pooled import common_dir, find_run_dirs, pooled_accuracy, write_pooled


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="run dirs, sweep dirs or globs")
    parser.add_argument("--split", default="test", help="which predictions_<split>.csv to pool (default: test)")
    parser.add_argument("--out", type=Path, default=None, help="folder for pooled_<split>.md/.csv")
    args = parser.parse_args(argv)
    try:
        run_dirs = find_run_dirs(args.runs)
        result = pooled_accuracy(run_dirs, split=args.split)
        md, csv = write_pooled(result, args.out or common_dir(run_dirs))
    except FermixError as exc:
        print(f"fermix: error: {exc}", file=sys.stderr)
        return 1
    print(result.markdown(), end="")
    print(f"\nwrote {md} and {csv}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
