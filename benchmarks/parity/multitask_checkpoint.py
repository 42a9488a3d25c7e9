"""Golden numbers for the multitask checkpoint importer (src/fermix/methods/multitask/convert.py).

    python benchmarks/parity/multitask_checkpoint.py \
        --checkout /path/to/Multitask-Emotion-Recognition-with-Incomplete-Labels

Builds the original's released CNN model the way `Multitask-CNN/models/resnet50.py`
(`_init_create_networks`) does — its `BackBone`, three `Head`s (hidden 128; EXPR 7, AU 8, VA 2×20)
in `--tasks` order and its `Model` — and writes, from it:
- `keys.pt`: the state dict's key names, shapes and dtypes (what a released .pth holds), the
  per-tensor sums of the seeded weights below (so the test can check it regenerates them), the
  original's class / AU orders (PATH/__init__.py) and the released CNN AU thresholds
  (`Best_AU_Thresholds['CNN']` of run_pretrained_model.py, read with `ast`, not executed);
- `heads.pt`: a fixed batch of 2048-d features and the original heads' outputs and 128-d
  features on it in eval mode, after every weight of the model was set by `seeded_value` (a
  seed per key name, written again in tests/methods/multitask/test_convert.py). The full state
  dict (ResNet-50, 94 MB) is not stored: the test regenerates it from the seed.

Run-time patches (also in meta.json):
- `utils.model_utils.load_model` is replaced by a stand-in for `resnet50_ferplus_dag`: its model
  definition and weights come from albanie's pytorch-benchmarks model zoo, which is not part of
  this repository and not available here. The stand-in has the dag's module names (conv1_7x7_s2,
  conv2_1_1x1_reduce, ..., pool5_7x7_s1, classifier) and shapes, taken from fermix's
  `fermix.models.ferplus.DAG_MODULES` (tested against the dag's file in tests/models/test_ferplus.py),
  and a `meta` with the dag's input size 224 and mean/std, which `BackBone` reads. Its forward is
  never run, so the golden file says nothing about the backbone's arithmetic (tests/models/test_ferplus.py does).
- `Multitask-CNN/models/resnet50.py` cannot be imported on Python 3 (`.cuda(async=True)` is a
  SyntaxError), so its four-line `_init_create_networks` is followed by hand: BackBone(opt),
  [Head(2048, hidden_size, n) for n in (7, 8, 40)], Model(backbone, heads, tasks); no `.cuda()`.
The options are the original parser's defaults (`options/base_options.py`, `initialize()` and
`parse_args`, not `parse()`, which creates folders and picks GPUs) with `--image_size 112`.
Extra packages needed to import the original: scikit-learn, six, matplotlib, torchvision (all in fermix's venv).
"""

from __future__ import annotations

import argparse
import ast
import sys
import zlib
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import importable, verify_checkout, write_golden

REPOSITORY = "wtomin/Multitask-Emotion-Recognition-with-Incomplete-Labels"
COMMIT = "b8089ee916c0d679c33522d009915745b28c7ef1"
FILES = {  # sha256 at COMMIT of every original file this script imports or reads
    "Multitask-CNN/utils/model_utils.py": "2b2a4f0861de21f383923ac9431a875daae8c603cbecc597d71618173b6f0c40",
    "Multitask-CNN/utils/data_utils.py": "a8c4a79c176e17aedcebad3b0422213a5195b6077e1afb3a0eb3995cc22ad9ad",
    "Multitask-CNN/PATH/__init__.py": "3c59978eee8ba9bc20c116ff3d8659aaf75ec9bbdc32d50bb9bdd8fbf6969fbc",
    "Multitask-CNN/options/base_options.py": "5bf627adb71abbe441367ae441a4b2d5be9aba0bdd1b88311bf76b53b5190890",
    "run_pretrained_model.py": "522c6ee933dbed7832bd8530218c8c0eebe73307700145fc6fc167eaebebd862",
}
SEED = 2020
BATCH = 4
PATCHES = [
    "utils.model_utils.load_model returns a stand-in for resnet50_ferplus_dag (the model zoo file is not in the "
    "repository): the dag's module names and shapes, meta imageSize 224; its forward is never run",
    "models/resnet50.py does not import on Python 3 (.cuda(async=True)); its _init_create_networks is followed by "
    "hand (BackBone, three Heads in --tasks order, Model) without .cuda()",
]


def seeded_value(key: str, shape: tuple[int, ...], dtype: torch.dtype, salt: int = 0) -> torch.Tensor:
    """A weight that depends only on (salt, key name, shape): what the test regenerates."""
    if dtype == torch.int64:  # num_batches_tracked
        return torch.tensor(zlib.crc32(key.encode()) % 1000, dtype=torch.int64).reshape(shape)
    g = torch.Generator().manual_seed(zlib.crc32(f"{salt}:{key}".encode()))
    value = torch.randn(shape, generator=g, dtype=torch.float32) * 0.05
    if key.endswith("running_var"):
        value = value.abs() + 0.5
    return value


def dag_standin() -> nn.Module:
    """Module names and shapes of resnet50_ferplus_dag (leaf modules only), ending in pool5 and the FER+ classifier."""
    from fermix.models.ferplus import DAG_MODULES, resnet50_ferplus

    ours = resnet50_ferplus()
    modules = dict(ours.named_modules())
    net = nn.Module()
    for dag_name, path in DAG_MODULES.items():
        setattr(net, dag_name, modules[path])
    net.pool5_7x7_s1 = nn.AvgPool2d(7, stride=1)
    net.classifier = nn.Conv2d(2048, 8, kernel_size=1, bias=True)
    net.meta = {"mean": [131.0912, 103.8827, 91.4953], "std": [1, 1, 1], "imageSize": [224, 224, 3]}
    return net


def released_thresholds(checkout: Path) -> list[float]:
    """Best_AU_Thresholds['CNN'] of run_pretrained_model.py, read as a literal (the script is not run)."""
    tree = ast.parse((checkout / "run_pretrained_model.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "Best_AU_Thresholds" for t in node.targets):
            return [float(v) for v in ast.literal_eval(node.value)["CNN"]]
    raise SystemExit("parity: run_pretrained_model.py has no Best_AU_Thresholds")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkout", type=Path, required=True)
    args = parser.parse_args()
    checkout = verify_checkout(args.checkout, FILES, REPOSITORY, COMMIT)
    importable(checkout, "Multitask-CNN")

    import utils.model_utils as mu  # the original's BackBone, Head, Model
    from PATH import PATH

    mu.load_model = lambda model_name, model_dir: dag_standin()  # patch 1
    from options.base_options import BaseOptions

    options = BaseOptions()
    options.initialize()
    opt = options._parser.parse_args(["--image_size", "112"])  # the README's training command; all else default
    sizes = {"AU": opt.AU_label_size, "EXPR": opt.EXPR_label_size, "VA": opt.VA_label_size * opt.digitize_num}
    backbone = mu.BackBone(opt)  # patch 2: resnet50.py's _init_create_networks, by hand
    heads = nn.ModuleList([mu.Head(backbone.output_feature_dim, opt.hidden_size, sizes[t]) for t in opt.tasks])
    model = mu.Model(backbone, heads, opt.tasks)

    state = model.state_dict()
    seeded = {k: seeded_value(k, tuple(v.shape), v.dtype) for k, v in state.items()}
    model.load_state_dict(seeded)
    model.eval()
    g = torch.Generator().manual_seed(SEED)
    features = torch.randn(BATCH, backbone.output_feature_dim, generator=g)
    heads_case: dict[str, object] = {"features": features}
    with torch.no_grad():
        for task, head in zip(opt.tasks, model.classifier, strict=True):
            out = head(features)
            heads_case[f"output_{task}"] = out["output"]
            heads_case[f"feature_{task}"] = out["feature"]
    categories = PATH().Aff_wild2.categories
    keys_case = {
        "keys": list(state),
        "shapes": [list(v.shape) for v in state.values()],
        "dtypes": [str(v.dtype).removeprefix("torch.") for v in state.values()],
        "sums": torch.tensor([float(v.double().sum()) for v in seeded.values()], dtype=torch.float64),
        "tasks": list(opt.tasks),
        "expr_classes": list(categories["EXPR"]),
        "au_names": list(categories["AU"]),
        "au_thresholds_cnn": released_thresholds(checkout),
        "output_feature_dim": int(backbone.output_feature_dim),
    }
    write_golden(
        "multitask_checkpoint",
        {"keys": keys_case, "heads": heads_case},
        {
            "repository": REPOSITORY,
            "commit": COMMIT,
            "script": "benchmarks/parity/multitask_checkpoint.py",
            "command": "python benchmarks/parity/multitask_checkpoint.py --checkout PATH",
            "patches": PATCHES,
            "seed": SEED,
        },
    )


if __name__ == "__main__":
    main()
