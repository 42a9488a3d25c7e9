"""Import the multitask authors' released CNN models (teacher, students) into a fermix checkpoint.

The release (wtomin/Multitask-Emotion-Recognition-with-Incomplete-Labels, README: the SharePoint
folders `Multitask-CNN/`; `download_pretrained_weights_aff_wild2.sh` fetches the students as
`pretrained_models/CNN/<k>.pth`) is one state dict per model, written by the original
`_save_network` from its `Model` (`net_epoch_teacher_id_resnet50.pth`,
`net_epoch_student_<k>_id_resnet50.pth`). Its keys:

- `backbone.model.<dag name>`: the FER+ ResNet-50 (`resnet50_ferplus_dag`), whose names
  `fermix.models.ferplus.convert_dag_state_dict` already maps;
- `classifier.<i>.{bn0,fc_0,bn1,fc_1}.*`: one Head per task in the original's `--tasks` order
  EXPR, AU, VA; a Head is BN1d → Linear → ReLU → BN1d → Linear, fermix's `heads.<task>.{0,1,3,4}`;
- a `module.` prefix when it was saved through DataParallel (several GPUs).

Two things are not keys for keys:
- the original's EXPR head scores the ABAW order (Neutral, Anger, Disgust, Fear, Happiness,
  Sadness, Surprise); fermix's Aff-Wild2 label space is `basic7`, so that head's last layer is
  reordered by class name (the AUs are reordered by name likewise; on Aff-Wild2 they agree);
- the AU thresholds are in no file: the original pastes them into `run_pretrained_model.py`
  (`Best_AU_Thresholds['CNN']`, found by `val.py` on Validation_Set). They become the
  `au_thresholds` buffer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from fermix.data.info import DataInfo
from fermix.data.label_spaces import canonical_name, get_label_space
from fermix.errors import FermixError
from fermix.models.ferplus import convert_dag_state_dict
from fermix.models.weights import read_state_dict

SOURCE_REPOSITORY = "github.com/wtomin/Multitask-Emotion-Recognition-with-Incomplete-Labels"
SOURCE_COMMIT = "b8089ee"
ORIGINAL_TASKS = ("expr", "au", "va")  # the original's --tasks default [EXPR, AU, VA]: classifier.0, .1, .2
ORIGINAL_EXPR = ("Neutral", "Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise")  # PATH/__init__.py
ORIGINAL_AUS = ("AU1", "AU2", "AU4", "AU6", "AU12", "AU15", "AU20", "AU25")
# run_pretrained_model.py, Best_AU_Thresholds['CNN']: the released CNN students' per-AU thresholds.
RELEASED_CNN_THRESHOLDS = (
    0.1448537,
    0.03918985,
    0.13766725,
    0.02652811,
    0.40589422,
    0.15572545,
    0.04808964,
    0.10848708,
)
_HEAD_PARTS = {"bn0": "0", "fc_0": "1", "bn1": "3", "fc_1": "4"}  # original Head -> fermix head Sequential index
_BACKBONE_PREFIX = "backbone.model."
_MODULE_PREFIX = "module."


def convert_member(
    state: Mapping[str, Tensor],
    reference: Mapping[str, Tensor],
    classes: Sequence[str],
    au_names: Sequence[str],
    source: str = "the state dict",
) -> dict[str, Tensor]:
    """One released model's state dict as a fermix `MultitaskNet` state dict (`reference`'s keys and shapes).

    `classes` / `au_names` are the fermix model's expression classes and AUs: the EXPR and AU heads'
    last layers are reordered from the original's order by name. Every problem is one sentence naming
    `source` and the original key.
    """
    state = {k.removeprefix(_MODULE_PREFIX): v for k, v in state.items()}
    if any(k.startswith("backbone.backbone.") for k in state):
        raise FermixError(f"{source} is a CNN-RNN model (backbone.backbone.*); this importer reads the CNN models")
    for key, value in state.items():
        if not isinstance(value, Tensor):
            raise FermixError(f"{source} holds a {type(value).__name__} under `{key}`, not a tensor")
    out: dict[str, Tensor] = {}
    for key, value in convert_dag_state_dict(state, source).items():
        out[f"backbone.{key}"] = value
    expr_rows = _order(ORIGINAL_EXPR, classes, "expression class", source)
    au_rows = _order(ORIGINAL_AUS, au_names, "action unit", source)
    for key, value in state.items():
        if key.startswith(_BACKBONE_PREFIX):
            continue
        parts = key.split(".")
        if len(parts) != 4 or parts[0] != "classifier" or not parts[1].isdigit() or parts[2] not in _HEAD_PARTS:
            raise FermixError(f"{source} holds `{key}`, which has no place in the fermix multitask model")
        index = int(parts[1])
        if index >= len(ORIGINAL_TASKS):
            raise FermixError(
                f"{source} holds `{key}` of a head number {index + 1}, where the original has "
                f"{len(ORIGINAL_TASKS)} (EXPR, AU, VA)"
            )
        task = ORIGINAL_TASKS[index]
        if parts[2] == "fc_1" and task in ("expr", "au") and parts[3] in ("weight", "bias"):
            rows = expr_rows if task == "expr" else au_rows
            if value.shape[0] != len(rows):
                raise FermixError(
                    f"{source}: `{key}` has {value.shape[0]} outputs where the fermix model has {len(rows)} "
                    f"({'classes' if task == 'expr' else 'action units'})"
                )
            value = value[list(rows)]
        out[f"heads.{task}.{_HEAD_PARTS[parts[2]]}.{parts[3]}"] = value
    result: dict[str, Tensor] = {}
    for key, expected in reference.items():
        if key not in out:
            # MatConvNet-era files may lack num_batches_tracked; BN reads it only when momentum is None
            if key.endswith("num_batches_tracked"):
                result[key] = torch.zeros((), dtype=expected.dtype)
                continue
            raise FermixError(f"{source} lacks `{_original_key(key)}` that the fermix multitask model needs")
        value = out.pop(key)
        if tuple(value.shape) != tuple(expected.shape):
            raise FermixError(
                f"{source}: `{_original_key(key)}` has shape {list(value.shape)} where the fermix model expects "
                f"{list(expected.shape)} (another backbone, head size or number of VA bins?)"
            )
        result[key] = value.detach().to(dtype=expected.dtype).contiguous()
    if out:
        raise FermixError(f"{source} holds `{_original_key(next(iter(out)))}`, which the fermix multitask model lacks")
    return result


def convert_released(
    teacher: str | Path,
    students: Sequence[str | Path],
    reference: Mapping[str, Tensor],
    classes: Sequence[str],
    au_names: Sequence[str],
    thresholds: Sequence[float] | None = RELEASED_CNN_THRESHOLDS,
) -> dict[str, Tensor]:
    """The fermix `Multitask` state dict (keys without the engine's `method.` prefix) of a released ensemble.

    `reference`: the state dict (or meta-device state dict) of the fermix model for 1 + len(students)
    members. `thresholds`: the per-AU thresholds, in the original's AU order (default: the released
    CNN ones); None keeps 0.5.
    """
    files = [Path(teacher), *(Path(s) for s in students)]
    n_members = len({k.split(".")[1] for k in reference if k.startswith("members.")})
    if n_members != len(files):
        raise ValueError(f"the reference model has {n_members} members for {len(files)} files")
    out: dict[str, Tensor] = {}
    for index, path in enumerate(files):
        prefix = f"members.{index}."
        member_ref = {k.removeprefix(prefix): v for k, v in reference.items() if k.startswith(prefix)}
        member = convert_member(read_release(path), member_ref, classes, au_names, source=str(path))
        out.update({prefix + k: v for k, v in member.items()})
    expected = reference["au_thresholds"]
    if thresholds is None:
        out["au_thresholds"] = torch.full(expected.shape, 0.5, dtype=expected.dtype)
    else:
        if len(thresholds) != len(ORIGINAL_AUS):
            raise FermixError(
                f"{len(thresholds)} AU thresholds given; the original has one per AU ({len(ORIGINAL_AUS)})"
            )
        rows = _order(ORIGINAL_AUS, au_names, "action unit", "the AU thresholds")
        out["au_thresholds"] = torch.tensor([float(thresholds[r]) for r in rows], dtype=expected.dtype)
    missing = [k for k in reference if k not in out]
    if missing:
        raise FermixError(f"the import leaves `{missing[0]}` of the fermix multitask model empty")
    return {k: out[k] for k in reference}


def read_release(path: str | Path) -> Mapping[str, Any]:
    """A released `.pth` state dict (one file per teacher / student), read with weights_only=True."""
    return read_state_dict(path, what="the released multitask model")


def _order(original: Sequence[str], target: Sequence[str], what: str, source: str) -> list[int]:
    """For each fermix name, the original's row holding it (matched by canonical name)."""
    rows = {canonical_name(name): i for i, name in enumerate(original)}
    order = []
    for name in target:
        row = rows.get(canonical_name(name))
        if row is None:
            raise FermixError(
                f"the fermix model's {what} `{name}` is not one the released model predicts "
                f"({', '.join(original)}), so {source} cannot fill it"
            )
        order.append(row)
    if len(order) != len(original):
        raise FermixError(
            f"the fermix model has {len(order)} {what}s where the released model has {len(original)} "
            f"({', '.join(original)})"
        )
    return order


def _original_key(fermix_key: str) -> str:
    """The released key a fermix member key comes from (for messages)."""
    if fermix_key.startswith("heads."):
        _, task, index, param = fermix_key.split(".")
        part = {v: k for k, v in _HEAD_PARTS.items()}.get(index, index)
        return f"classifier.{ORIGINAL_TASKS.index(task)}.{part}.{param}"
    if fermix_key.startswith("backbone."):
        from fermix.models.ferplus import _dag_key

        return _BACKBONE_PREFIX + _dag_key(fermix_key.removeprefix("backbone."))
    return fermix_key


# --- a complete fermix checkpoint ---------------------------------------------------------------
def affwild2_info(image_size: int) -> DataInfo:
    """What the Aff-Wild2 adapter tells the method (label space basic7, the 8 ABAW AUs), without reading data."""
    from fermix.data.action_units import AFFWILD2_AUS

    return DataInfo(
        label_space=get_label_space("basic7"),
        keys=frozenset({"image", "sample_id", "subject", "expr", "au", "va"}),
        image_size=image_size,
        extras={"au_names": list(AFFWILD2_AUS)},
    )


def write_checkpoint(
    teacher: str | Path,
    students: Sequence[str | Path],
    out_path: str | Path,
    thresholds: Sequence[float] | None = RELEASED_CNN_THRESHOLDS,
    overrides: Sequence[str] = (),
) -> dict[str, Any]:
    """Write a fermix checkpoint of the released ensemble that `fermix test` evaluates on Aff-Wild2.

    Its config is `experiment=multitask_affwild2 backbone=resnet50_ferplus` (the paper recipe's
    preprocessing, the default trainer) and `method.n_students=len(students)`, or without students
    `method.stages=teacher` (a teacher for `method.teacher_ckpt`); `overrides` are further `fermix
    train` overrides (e.g. `dataset.root=PATH`). The backbone is built without pretrained weights:
    every weight comes from the release. Returns the checkpoint's `fermix` section.
    """
    from fermix.engine.imported import compose_train_config, file_sha256, reference_state, write_imported_checkpoint

    members = [f"method.n_students={len(students)}"] if students else ["method.stages=teacher"]
    config = compose_train_config(
        ["experiment=multitask_affwild2", "backbone=resnet50_ferplus", "trainer=default", *members, *overrides,
         "backbone.pretrained=null"],  # the recipe's data settings; trainer=default: its GPU trainer is for training
        what="multitask",
    )  # fmt: skip
    info = affwild2_info(int(config["data"]["image_size"]))
    reference = reference_state(config, info)
    state = convert_released(
        teacher, students, reference, info.label_space.classes, info.extras["au_names"], thresholds
    )
    files = {"teacher": Path(teacher), **{f"student{k}": Path(p) for k, p in enumerate(students)}}
    imported_from = {
        "repository": SOURCE_REPOSITORY,
        "commit": SOURCE_COMMIT,
        "files": {name: {"file": str(p.resolve()), "sha256": file_sha256(p)} for name, p in files.items()},
        "au_thresholds": None if thresholds is None else [float(t) for t in thresholds],
    }
    return write_imported_checkpoint(out_path, config, info, state, imported_from)
