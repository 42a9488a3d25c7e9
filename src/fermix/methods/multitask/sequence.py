"""`multitask_rnn`: the CNN-RNN variant of multitask (spec §1 "CNN-RNN variant", §4, §5, §7.8).

Every member (teacher, students) is a frozen copy of one trained multitask CNN member — backbone
and heads, loaded from a fermix multitask checkpoint — plus, per task, a bidirectional GRU over
the head's 128-d features of a window of frames, ReLU and a linear layer: per-frame outputs
(B, T, C). The teacher → students recipe, the losses over the flattened B·T frames, the ensemble
and the AU thresholds are multitask's own (this class subclasses it); only the GRU heads train.

Each member owns its CNN copy, as in the original, where every model re-loads the CNN: with
`frozen_cnn_mode: train` (the original) the frozen CNN's BN statistics drift while its member
trains and its dropout stays on; `eval` (the [fix]) keeps the CNN in eval mode throughout.

Batches are windows of frames (`data.windows`, fermix.data.windows): B·T frame rows in (B, T)
order plus `seq_len`; evaluation batches hide the labels of frames a window covers twice.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fermix.data.info import DataInfo
from fermix.data.windows import FrameWindows
from fermix.errors import FermixError
from fermix.methods.base import Batch, Stage
from fermix.methods.multitask.losses import TASKS
from fermix.methods.multitask.model import Multitask, MultitaskConfig, MultitaskNet


@dataclass
class MultitaskRNNConfig(MultitaskConfig):
    cnn_checkpoint: str | None = None  # a fermix multitask (CNN) checkpoint: its member's backbone + heads
    cnn_member: str = "teacher"  # teacher | student<k>: which CNN member ([unverified] in the original)
    frozen_cnn_mode: str = "train"  # train (the original: BN statistics drift, dropout on) | eval (the [fix])
    gru_hidden: int = 64  # per direction: the original's hidden_size // 2
    teacher_epochs: int = 3
    student_epochs: int = 3
    balance: bool = False  # the original's CNN-RNN comments its samplers out
    ensemble: str = "all"  # the CNN-RNN test.py always puts the teacher in the ensemble


class SequenceNet(nn.Module):
    """A frozen multitask CNN + per task: GRU(128 → 2×64, bidirectional) → ReLU → Linear(128, n_out)."""

    def __init__(self, cnn: MultitaskNet, sizes: Mapping[str, int], gru_hidden: int, cnn_mode: str = "train") -> None:
        super().__init__()
        self.cnn = cnn.requires_grad_(False)
        self.cnn_mode = cnn_mode
        features = cnn.heads[TASKS[0]][3].num_features  # the heads' 128-d feature
        self.grus = nn.ModuleDict(
            {t: nn.GRU(features, gru_hidden, num_layers=1, batch_first=True, bidirectional=True) for t in TASKS}
        )
        self.fcs = nn.ModuleDict({t: nn.Linear(2 * gru_hidden, sizes[t]) for t in TASKS})

    def train(self, mode: bool = True) -> SequenceNet:
        super().train(mode)
        if self.cnn_mode == "eval":
            self.cnn.eval()
        return self

    def sequence(self, frames: Tensor) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """(B, T, 3, H, W) -> ({task: (B, T, C) logits}, {task: (B, T, 128) CNN head features})."""
        b, t = frames.shape[:2]
        with torch.no_grad():  # frozen: no parameter needs a gradient, so none flows into the CNN
            _, features = self.cnn(frames.flatten(0, 1))
        outputs, sequences = {}, {}
        for task in TASKS:
            seq = features[task].reshape(b, t, -1)
            sequences[task] = seq
            outputs[task] = self.fcs[task](F.relu(self.grus[task](seq)[0]))
        return outputs, sequences

    def forward(self, frames: Tensor) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """Per-frame rows in (B, T) order — what multitask's losses and ensemble treat as samples."""
        outputs, sequences = self.sequence(frames)
        return {k: v.flatten(0, 1) for k, v in outputs.items()}, {k: v.flatten(0, 1) for k, v in sequences.items()}


class MultitaskRNN(Multitask):
    name = "multitask_rnn"
    Config = MultitaskRNNConfig
    dataset_wrapper = FrameWindows  # batches are windows of frames (data.windows)
    _cnn_state: dict[str, Tensor] | None = None  # the loaded CNN member's weights (training only)

    def __init__(self, config: MultitaskRNNConfig, data_info: DataInfo, backbone: Mapping[str, Any]) -> None:
        _check(config)
        super().__init__(config, data_info, backbone)

    def _make_member(self) -> SequenceNet:
        cnn = MultitaskNet(self.backbone_cfg, self.sizes, self.config.head_hidden)
        if self._cnn_state is not None:
            cnn.load_state_dict(self._cnn_state)
        return SequenceNet(cnn, self.sizes, self.config.gru_hidden, self.config.frozen_cnn_mode)

    # --- stages -----------------------------------------------------------------------------
    def begin_stage(self, stage: Stage) -> None:
        """The stage's member is re-created from the trained CNN (loaded once) with fresh GRU heads."""
        if self._cnn_state is None:
            self._cnn_state = load_cnn_member(self.config, self.data_info, self.backbone_cfg, self.sizes)
        super().begin_stage(stage)
        for member in self.members:
            member.cnn.requires_grad_(False)

    def param_groups(self) -> list[dict[str, Any]]:
        groups = super().param_groups()
        return [{**g, "params": [p for p in g["params"] if p.requires_grad]} for g in groups]

    # --- batches of windows ---------------------------------------------------------------------
    def _groups(self, batch: Batch, net: nn.Module) -> tuple[dict[str, dict[str, Tensor]], dict[str, Tensor], dict]:
        return super()._groups({task: {**sub, "image": frames(sub)} for task, sub in batch.items()}, net)

    def predict(self, batch: Batch) -> dict[str, Tensor]:
        return super().predict({**batch, "image": frames(batch)})


def frames(batch: Batch) -> Tensor:
    """The batch's B·T frame rows as (B, T, 3, H, W); the window collate puts `seq_len` in the batch."""
    seq_len = batch.get("seq_len")
    if seq_len is None:
        raise FermixError(
            "method multitask_rnn reads windows of frames: set data.windows.seq_len (method/multitask_rnn.yaml does)"
        )
    image = batch["image"]
    if image.ndim == 5:
        return image
    if len(image) % int(seq_len):
        raise ValueError(f"a batch of {len(image)} frames is not a whole number of windows of {seq_len}")
    return image.reshape(-1, int(seq_len), *image.shape[1:])


def member_index(name: str) -> int:
    """teacher -> 0, student<k> -> k + 1 (multitask's member order)."""
    if name == "teacher":
        return 0
    match = re.fullmatch(r"student(\d+)", name)
    if match is None:
        raise FermixError(f"method.cnn_member={name} is not teacher or student<k> (student0, student1, ...)")
    return int(match.group(1)) + 1


def load_cnn_member(
    config: MultitaskRNNConfig, data_info: DataInfo, backbone: Mapping[str, Any], sizes: Mapping[str, int]
) -> dict[str, Tensor]:
    """The chosen member's CNN weights from a fermix multitask checkpoint, checked against this run."""
    from fermix.engine.checkpoint import load_checkpoint

    path = config.cnn_checkpoint
    if not path:
        raise FermixError(
            "method multitask_rnn needs method.cnn_checkpoint=PATH "
            "(the best.ckpt of a `fermix train method=multitask` run)"
        )
    ckpt = load_checkpoint(path)  # weights_only=True; one sentence for a missing, corrupt or foreign file
    meta = ckpt["fermix"]
    kind = meta.get("method") or meta.get("config", {}).get("method", {}).get("name")
    if kind != "multitask":
        raise FermixError(f"method.cnn_checkpoint {path} is a {kind} checkpoint, not a multitask (CNN) one")
    trained = meta.get("config", {})
    if meta.get("label_space") != data_info.label_space.to_dict():
        raise FermixError(f"the CNN in {path} was trained on other expression classes than this dataset's")
    if list(meta.get("data_info", {}).get("extras", {}).get("au_names") or []) != list(
        data_info.extras.get("au_names") or []
    ):
        raise FermixError(f"the CNN in {path} was trained on other action units than this dataset's")
    cnn_backbone = trained.get("backbone", {}).get("name")
    if cnn_backbone != backbone.get("name"):
        raise FermixError(f"the CNN in {path} has backbone={cnn_backbone}; run multitask_rnn with the same backbone")
    index = member_index(config.cnn_member)
    prefix = f"method.members.{index}."
    state = {k.removeprefix(prefix): v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
    if not state:
        raise FermixError(f"{path} has no member {config.cnn_member} (its CNN run had fewer students)")
    probe = MultitaskNet(backbone, sizes, config.head_hidden)
    try:
        probe.load_state_dict(state)
    except RuntimeError as exc:
        raise FermixError(
            f"the CNN in {path} does not fit this run's backbone / head settings "
            f"(it was trained with backbone {trained.get('backbone')} and head_hidden "
            f"{trained.get('method', {}).get('head_hidden')})"
        ) from exc
    return state


def _check(config: MultitaskRNNConfig) -> None:
    if config.frozen_cnn_mode not in ("train", "eval"):
        raise FermixError(f"method.frozen_cnn_mode={config.frozen_cnn_mode} is not one of train, eval")
    if config.balance:
        raise FermixError("method multitask_rnn has no balanced samplers (the original CNN-RNN has none); "
                          "set method.balance=false")  # fmt: skip
    if config.batching != "per_task":
        raise FermixError("method multitask_rnn trains with batching=per_task only (one window batch per task)")
    if config.gru_hidden < 1:
        raise FermixError(f"method.gru_hidden={config.gru_hidden} must be at least 1")
    member_index(config.cnn_member)
