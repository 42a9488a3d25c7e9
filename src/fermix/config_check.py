"""Overrides composed by Hydra (typed by fermix.config_schema) before a job starts; a refusal is one sentence."""

import difflib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException, MissingConfigException, OverrideParseException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from fermix.config_schema import check_ranges, option_text, value_sentence
from fermix.errors import FermixError


def check_overrides(args: Sequence[str], config_dir: Path, config_name: str) -> None:
    """Raise FermixError naming the first override that cannot work; a `-m` sweep: each value of each sweep."""
    if any(a.startswith("-") and a not in ("-m", "--multirun", "-r", "--run") for a in args):
        return  # --help, --cfg job, --info ...: Hydra only reports
    parsed = []
    for line in (a for a in args if not a.startswith("-")):
        try:
            parsed += OverridesParser.create().parse_overrides([line])
        except OverrideParseException as exc:
            raise FermixError(f"cannot read the override `{line}` ({str(exc).splitlines()[0].rstrip('.')}); write "
                              "key=value, quoting values with spaces or special characters") from None  # fmt: skip
    parsed = [o for o in parsed if not o.key_or_group.startswith("hydra")]
    sweeps = [o for o in parsed if o.is_sweep_override()]
    if sweeps and not {"-m", "--multirun"} & set(args):
        raise FermixError(f"`{sweeps[0].input_line}` gives several values, which only a sweep takes: add -m to run "
                          "one job per value, or write a list as [a,b] or a string with commas in quotes")  # fmt: skip
    if any(
        o.value_type.name.startswith(("GLOB", "INTERVAL")) or (config_dir / o.key_or_group).is_dir() for o in sweeps
    ):
        return  # sweeps over groups, intervals or globs: Hydra composes (and so checks) each job
    values = {id(o): [f"{o.key_or_group}={v}" for v in o.sweep_string_iterator()] for o in sweeps}
    first = [values[id(o)][0] if id(o) in values else o.input_line for o in parsed]
    jobs = [[v if x is o else f for x, f in zip(parsed, first, strict=True)] for o in sweeps for v in values[id(o)]]
    for job in jobs or [first]:
        check_ranges(_compose(config_dir, config_name, job))


def _compose(config_dir: Path, config_name: str, overrides: list[str]) -> Any:
    GlobalHydra.instance().clear()  # a job that ran earlier in this process leaves Hydra initialised
    try:
        with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
            return compose(config_name=config_name, overrides=overrides)
    except (HydraException, OmegaConfBaseException) as exc:
        groups = [line for line in overrides if (config_dir / _key(line)).is_dir()]
        raise FermixError(_sentence(exc, lambda: _compose(config_dir, config_name, groups), overrides)) from None


def _key(line: str) -> str:
    return line.lstrip("+~").partition("=")[0]


def _sentence(exc: BaseException, base: Callable[[], Any], job: list[str]) -> str:
    """Hydra's refusal `exc` of `job` as one sentence; `base()` composes the job's group choices alone."""
    cause, text = exc.__cause__ or exc, str(exc)
    if isinstance(exc, MissingConfigException) and "/" in str(exc.missing_cfg_file) and exc.options:
        group, _, choice = str(exc.missing_cfg_file).rpartition("/")
        close = "".join(f" (did you mean `{c}`?)" for c in difflib.get_close_matches(choice, exc.options, n=1))
        return f"unknown {group} `{choice}`{close}; choose from {', '.join(exc.options)}"
    message, item = str(getattr(cause, "msg", cause)), str(getattr(cause, "full_key", "") or "")
    key = item.partition("[")[0]  # a refused list item (`dataset.tasks[1]`) belongs to the list's override
    line = next((x for x in job if _key(x) == key or _key(x).startswith(key + ".")), None)
    if "Error merging override " in text:  # Hydra names the override it was applying
        line = text.split("Error merging override ", 1)[1].splitlines()[0].strip()
    if (added := next((x for x in job if x.startswith("+") and _key(x) in text), None)) and "already at" in text:
        return f"`{added}` adds {_key(added)}, which exists already; write {added[1:]} to change it"
    if (deleted := next((x for x in job if x.startswith("~")), None)) and "Could not delete" in text:
        return f"`{deleted}` deletes {_key(deleted)}, which the config does not have"
    if (line and _key(line) != key) or "not in" in message or "Key '" in message:
        return _unknown_key(base(), _key(line) if line else key, line)
    if not key:
        return text.strip().splitlines()[0].rstrip(".")
    default = option_text(OmegaConf.select(base(), key, throw_on_resolution_failure=False))
    return value_sentence(item, (line or "").partition("=")[2], message, f" (its default is {default})")


def _unknown_key(base: Any, key: str, line: str | None) -> str:
    """An unknown key: the nearest existing key, or the keys beside it and how to add one."""
    parts, node, depth = key.split("."), OmegaConf.to_container(base, resolve=False), 0
    while depth < len(parts) and isinstance(node, dict) and parts[depth] in node:
        node, depth = node[parts[depth]], depth + 1
    if not isinstance(node, dict):
        return f"`{line}`: {'.'.join(parts[:depth])} is a single value, not a group of options"
    where = f" in `{line}`" if line else ""
    for close in difflib.get_close_matches(parts[depth], [str(k) for k in node], n=3, cutoff=0.6):
        candidate = ".".join([*parts[:depth], close, *parts[depth + 1 :]])
        if OmegaConf.select(base, candidate, default=base) is not base:  # `base` marks "no such key"
            return f"unknown config key `{key}`{where} (did you mean `{candidate}`?)"
    if not line:
        return f"unknown config key `{key}`; add a new key with a + in front (+{key}=...)"
    at, listed = f"under `{'.'.join(parts[:depth])}`" if depth else "at the top level", ", ".join(map(str, node))
    return f"unknown config key `{key}`{where}; the keys {at} are {listed} (write +{key}=... to add a new one)"
