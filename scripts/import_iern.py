"""Turn the IERN authors' released MixBasic model into a fermix checkpoint (docs/methods/iern.md).

    python scripts/import_iern.py pretrained_models/mixbasic/fold_bias100v1 pretrained_models/iern_bias100v1.ckpt
    python scripts/import_iern.py SRC_DIR OUT.ckpt [--epoch 160] [--fold v1] [--bias bias100] [dataset.root=PATH ...]

SRC_DIR holds the eight `<epoch>_net_<Name>.pth` files of one fold (Base, EmoGen, ConGen, Recons,
EmoDis, ConDis, Cnfnd, Cls). The fold and bias default to the folder's name (`fold_bias100v1`).
Trailing KEY=VALUE arguments are `fermix train` overrides stored in the checkpoint's config, e.g.
the dataset root. The checkpoint is checked by loading it as `fermix test` does; errors are one
`fermix: error:` sentence and exit code 1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fermix.errors import FermixError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("src_dir", type=Path, help="folder with the released <epoch>_net_<Name>.pth files")
    parser.add_argument("out", type=Path, help="fermix checkpoint to write (.ckpt)")
    parser.add_argument("--epoch", default="160", help="epoch prefix of the files (default: 160, the released one)")
    parser.add_argument("--fold", default=None, help="v1, v2 or v3 (default: from SRC_DIR's name, else v1)")
    parser.add_argument("--bias", default=None, help="bias100 or bias90 (default: from SRC_DIR's name, else bias100)")
    parser.add_argument("overrides", nargs="*", help="fermix train overrides, e.g. dataset.root=datasets/MixBasic")
    args = parser.parse_args(argv)

    from fermix.methods.iern.convert import write_checkpoint

    try:
        meta = write_checkpoint(args.src_dir, args.out, args.epoch, args.fold, args.bias, args.overrides)
    except FermixError as exc:
        print(f"fermix: error: {exc}", file=sys.stderr)
        return 1
    dataset = meta["config"]["dataset"]
    imported = meta["provenance"]["imported_from"]
    size_mb = args.out.stat().st_size / 2**20
    print(f"wrote {args.out} ({size_mb:.0f} MB): iern on {dataset['name']} fold {dataset['fold']} {dataset['bias']}")
    print(f"  from {imported['folder']} epoch {imported['epoch']} ({len(imported['files'])} files, sha256 recorded)")
    print(f"  classes {', '.join(meta['label_space']['classes'])}; {meta['data_info']['num_domains']} strata")
    print("  centers set from the released dictionary (the release does not hold them; inference does not use them)")
    print("  loads strictly into a freshly built IERN, as fermix test does")
    print("evaluate it with:")
    print(f"  fermix test ckpt={args.out} dataset.root=PATH/TO/MixBasic")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
