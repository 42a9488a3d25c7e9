"""Overrides judged by Hydra's own composition (typed by fermix.config_schema) before a job starts,
its refusal turned into one sentence instead of a page or a run that crashes after its folder exists.

A multirun composes once per value of each enumerable sweep; sweeps over groups or ranges are left to
the jobs. Groups without a schema yet (dataset, backbone, optim, sched, logger) are judged by their
YAML default's type (`_untyped_problem`) until they have one.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fermix.errors import FermixError

_CHECKED_FLAGS = {"-m", "--multirun", "-r", "--run"}  # any other flag (--help, --cfg ...) only reports
_KINDS = {"Integer": "an integer", "Float": "a number", "Boolean": "true or false", "valid bool": "true or false"}
_KINDS["ListConfig"] = "a list such as [a, b]"


def check_overrides(args: Sequence[str], config_dir: Path, config_name: str) -> None:
    """Raise FermixError naming the first override that cannot work; return when all can."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    if any(a.startswith("-") and a not in _CHECKED_FLAGS for a in args):
        return
    lines = [a for a in args if not a.startswith("-")]
    try:
        parsed = OverridesParser.create().parse_overrides(lines)
    except OverrideParseException as exc:
        line = next(x for x in lines if _unparsable(x))
        reason = [r for r in str(exc).splitlines() if r.strip() and not r.startswith(("Error parsing", "See h"))]
        raise FermixError(f"cannot read the override `{line}` ({reason[0].strip().rstrip('.')}); write key=value, "
                          "quoting values with spaces or special characters") from None  # fmt: skip
    mine = [o for o in parsed if not o.key_or_group.startswith(("hydra.", "hydra/"))]
    sweeps = [o for o in mine if o.is_sweep_override()]
    if sweeps and not {"-m", "--multirun"} & set(args):
        raise FermixError(
            f"`{sweeps[0].input_line}` gives several values, which only a sweep takes: add -m to run one job per "
            "value, or write a list as [a,b] or a string with commas in quotes"
        )
    enumerable = ("SIMPLE_CHOICE_SWEEP", "CHOICE_SWEEP", "RANGE_SWEEP")
    if any(o.value_type.name not in enumerable or (config_dir / o.key_or_group).is_dir() for o in sweeps):
        return  # a sweep over config groups, intervals or globs: each job is composed (and checked) by Hydra
    first = {id(o): f"{o.key_or_group}={next(iter(o.sweep_string_iterator()))}" for o in sweeps}
    jobs = [[first.get(id(o), o.input_line) for o in mine]]
    for o in sweeps:
        for v in o.sweep_string_iterator():
            jobs.append([f"{o.key_or_group}={v}" if x is o else first.get(id(x), x.input_line) for x in mine])
    groups = [line for line in jobs[0] if (config_dir / _key(line)).is_dir()]
    for job in jobs:
        _judge(config_dir, config_name, job, groups)


def _key(line: str) -> str:
    return line.lstrip("+~").partition("=")[0]


def _unparsable(line: str) -> bool:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        OverridesParser.create().parse_overrides([line])
    except Exception:
        return True
    return False


def _compose(config_dir: Path, config_name: str, overrides: list[str]) -> Any:
    """Hydra's composition of one job; its refusal as one sentence about the override it names."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException, MissingConfigException
    from omegaconf.errors import OmegaConfBaseException

    GlobalHydra.instance().clear()  # a job that ran earlier in this process leaves Hydra initialised
    try:
        with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
            return compose(config_name=config_name, overrides=overrides)
    except MissingConfigException as exc:
        group, _, choice = str(getattr(exc, "missing_cfg_file", "") or "").rpartition("/")
        options = list(getattr(exc, "options", None) or [])
        if not (group and options):
            raise FermixError(str(exc).strip().splitlines()[0]) from None
        close = difflib.get_close_matches(choice, options, n=1)
        hint = f" (did you mean `{close[0]}`?)" if close else ""
        raise FermixError(f"unknown {group} `{choice}`{hint}; choose from {', '.join(options)}") from None
    except (HydraException, OmegaConfBaseException) as exc:
        groups = [line for line in overrides if (config_dir / _key(line)).is_dir()]
        raise FermixError(_sentence(exc, lambda: _compose(config_dir, config_name, groups), overrides)) from None


def _judge(config_dir: Path, config_name: str, job: list[str], groups: list[str]) -> None:
    """Compose one job, then judge the values of groups without a schema by their defaults' types."""
    cfg, base = _compose(config_dir, config_name, job), None
    for line in job:
        key, _, value = line.partition("=")
        if "." in key and not key.startswith(("+", "~")) and _untyped(cfg, key):
            base = base if base is not None else _compose(config_dir, config_name, groups)
            default = _select(base, key)
            if (problem := _untyped_problem(_select(cfg, key), default)) is not None:
                raise FermixError(f"{key} must be {problem} (its default is {option_text(default)}), got `{value}`")


def _sentence(exc: BaseException, base: Any, job: list[str]) -> str:
    cause = exc.__cause__ or exc
    message, item = str(getattr(cause, "msg", cause)), str(getattr(cause, "full_key", "") or "")
    key = item.partition("[")[0]  # a refused list item (`dataset.tasks[1]`) belongs to the list's override
    line = next((x for x in job if _key(x) == key or _key(x).startswith(key + ".")), None)
    if "Error merging override " in str(exc):  # Hydra names the override it was applying
        line = str(exc).split("Error merging override ", 1)[1].splitlines()[0].strip()
    if "already at" in str(exc):
        added = next(x for x in job if x.startswith("+") and x[1:].split("=")[0] in str(exc))
        return f"`{added}` adds {added[1:].split('=')[0]}, which exists already; write {added[1:]} to change it"
    if "Could not delete" in str(exc):
        deleted = next(x for x in job if x.startswith("~"))
        return f"`{deleted}` deletes {deleted[1:].split('=')[0]}, which the config does not have"
    if (line and _key(line) != key) or "not in" in message or "Key '" in message:  # deeper than a value / unknown
        return _unknown_key(base(), _key(line), line) if line else _unknown_key(base(), key, None)
    default = f" (its default is {option_text(_select(base(), key))})"
    return value_sentence(item, (line or "").partition("=")[2], message, default)


def value_sentence(key: str, got: Any, message: str, default: str = "") -> str:
    """OmegaConf's refusal of a value (its ValidationError message) as one sentence."""
    if "is not Optional" in message or "Incompatible value 'None'" in message:
        return f"{key} cannot be null{default}"
    if "expected one of" in message:
        choices = message.split("[")[1].split("]")[0]
        if key.endswith("]"):  # one item of a list
            value = message.split("'")[1]
            return f"{key.partition('[')[0]}={got} holds `{value}`, which is not one of {choices}{default}"
        return f"{key}={got} is not one of {choices}{default}"
    kind = next((words for name, words in _KINDS.items() if name in message), _MAPPING)
    return f"{key} must be {kind}{default}, got `{got}`"


def _select(cfg: Any, key: str) -> Any:
    from omegaconf import OmegaConf

    node = OmegaConf.select(cfg, key, throw_on_resolution_failure=False)
    return OmegaConf.to_container(node) if OmegaConf.is_config(node) else node


def _untyped(cfg: Any, key: str) -> bool:
    """True when the key's group has no schema yet (its node is a plain mapping)."""
    from omegaconf import OmegaConf

    parent = OmegaConf.select(cfg, key.rpartition(".")[0])
    return OmegaConf.is_dict(parent) and OmegaConf.get_type(parent) is dict


def _untyped_problem(value: Any, default: Any) -> str | None:
    """The YAML default's type, for groups without a schema; null and interpolations take anything."""
    if value is None or default is None or (isinstance(default, str) and "${" in default):
        return None
    kinds = [(bool, (bool,), "true or false"), (int, (int,), "an integer"), (float, (int, float), "a number")]
    kinds += [(str, (str, int, float), "a string"), (list, (list,), _KINDS["ListConfig"]), (dict, (dict,), _MAPPING)]
    for kind, ok, words in kinds:
        if isinstance(default, kind):
            return None if isinstance(value, ok) and (kind is bool or not isinstance(value, bool)) else words
    return None


def option_text(value: Any) -> str:
    """A default as the YAML writes it: true, null, `word`, [a, b]."""
    if isinstance(value, list | tuple):
        return f"[{', '.join(str(v) for v in value)}]"
    if value is None or isinstance(value, bool):
        return "null" if value is None else str(value).lower()
    return f"`{value}`" if isinstance(value, str) else str(value)


def _unknown_key(base: Any, key: str, line: str | None) -> str:
    """An unknown key in one sentence: the nearest existing key, or its siblings and how to add it."""
    from omegaconf import OmegaConf

    parts, tree = key.split("."), OmegaConf.to_container(base, resolve=False)
    node, depth = tree, 0
    while depth < len(parts) and isinstance(node, dict) and parts[depth] in node:
        node, depth = node[parts[depth]], depth + 1
    where = f" in `{line}`" if line else ""
    if depth < len(parts) and not isinstance(node, dict):
        return f"`{line}`: {'.'.join(parts[:depth])} is a single value, not a group of options"
    siblings = [str(k) for k in node] if isinstance(node, dict) else []
    for close in difflib.get_close_matches(parts[depth] if depth < len(parts) else "", siblings, n=3, cutoff=0.6):
        candidate = ".".join([*parts[:depth], close, *parts[depth + 1 :]])
        if OmegaConf.select(base, candidate, default=_MISSING) is not _MISSING:
            return f"unknown config key `{key}`{where} (did you mean `{candidate}`?)"
    if not line:
        return f"unknown config key `{key}`; add a new key with a + in front (+{key}=...)"
    at = f"under `{'.'.join(parts[:depth])}`" if depth else "at the top level"
    listed = ", ".join(siblings[:25]) + (", ..." if len(siblings) > 25 else "")
    return f"unknown config key `{key}`{where}; the keys {at} are {listed} (write +{key}=... to add a new one)"


_MISSING = object()
_MAPPING = "a mapping such as {key: value}"
