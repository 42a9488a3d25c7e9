"""Audit a MixBasic root's fold files before training on it (methods/iern.md §7 test 9).

    python scripts/check_mixbasic.py datasets/mixbasic [--bias bias100 --fold v1 ...]

Checks every CSV path against the disk and emotion_labels.pkl, train ∩ test = ∅ and one image set
per fold, the Latin square of withheld cells, bias100 train ⊂ bias90 train, and, for the real
2991-image dataset, the published per-fold counts. Prints a summary and exits 0, or prints the
first violation as one `fermix: error:` sentence and exits 1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fermix.data.datasets.mixbasic_audit import audit_folds
from fermix.errors import FermixError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", type=Path, help="the MixBasic folder (or the folder that holds it)")
    parser.add_argument("--bias", action="append", help="bias100 and/or bias90 (default: both)")
    parser.add_argument("--fold", action="append", help="v1, v2 and/or v3 (default: all three)")
    args = parser.parse_args(argv)
    try:
        audit = audit_folds(args.root, biases=args.bias or ("bias100", "bias90"), folds=args.fold or ("v1", "v2", "v3"))
    except FermixError as exc:
        print(f"fermix: error: {exc}", file=sys.stderr)
        return 1
    print(audit.summary())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
