"""Overrides checked before Hydra runs, so a typo costs one sentence instead of a page or a crashed run.

Hydra explains an unknown key in five lines and accepts `trainer.max_epochs=abc` (the configs have
no schema), which then fails deep inside Lightning. `check_overrides` composes the config the way
Hydra will and judges every `key=value` override against the default it replaces:

- the key must exist (else: a difflib suggestion from its sibling keys, or how to add a new key);
- the value must have the default's type: an int default takes an int, a float default an int or
  float, a bool default true/false, a str default a string or a number (read as its text), a list
  default a list, a mapping default a mapping; a null, missing (`???`) or interpolated default takes
  anything, and so does a null value (many options use null for "off"). `WIDER` lists the few keys
  that take more than their default's type; a method option is also accepted when the method's
  Config dataclass declares a type that admits it (`ramp_alpha: 2` in YAML, `float` in the class).

Additions (`+key=`), deletions (`~key`) and `hydra.*` / `hydra/` overrides are left to Hydra's
own composition, which runs last here so that whatever else it refuses also ends in one sentence.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from fermix.errors import FermixError

# Keys whose consumers take more than the default's type (Lightning's Trainer arguments).
WIDER: dict[str, tuple[type, ...]] = {
    "trainer.devices": (int, str, list),  # 2, "auto", [0, 1], "0,1"
    "trainer.precision": (str, int),  # "16-mixed", 32
    "trainer.deterministic": (bool, str),  # true, "warn"
}

# Hydra flags after which the command only reports (help, config, shell completion): no check.
_CHECKED_FLAGS = {"-m", "--multirun", "-r", "--run"}
_MISSING = object()


def check_overrides(
    args: Sequence[str],
    config_dir: Path,
    config_name: str,
    declared: Callable[[str, Any, Any], bool] | None = None,
) -> None:
    """Raise FermixError naming the first override that cannot work; return when all can.

    `args` are the command's arguments after the subcommand. `declared(key, value, cfg)` may accept
    a value the default's type would refuse (the CLI passes `method_declares`).
    """
    flags = [a for a in args if a.startswith("-")]
    if any(f not in _CHECKED_FLAGS for f in flags):
        return  # --help, --cfg job, --info ...: Hydra prints and exits
    multirun = any(f in ("-m", "--multirun") for f in flags)
    lines = [a for a in args if not a.startswith("-")]
    overrides = [o for o in _parse(lines) if not _is_hydra(o.key_or_group)]
    if not overrides:
        return
    sweeps = [o for o in overrides if o.is_sweep_override()]
    if sweeps and not multirun:
        line = sweeps[0].input_line
        raise FermixError(
            f"`{line}` gives several values, which only a sweep takes: add -m to run one job per value, "
            f"or write a list as [a,b] or a string with commas in quotes"
        )
    groups = [o for o in overrides if _is_group(config_dir, o.key_or_group)]
    group_ids = {id(o) for o in groups}
    if any(o.is_sweep_override() for o in groups) or any(not _enumerable(o) for o in sweeps):
        return  # a sweep over config groups or over intervals / globs: each job is checked by Hydra

    base = _compose(config_dir, config_name, [_first_choice(o) for o in groups])
    from omegaconf import OmegaConf

    tree = OmegaConf.to_container(base, resolve=False)
    for o in overrides:
        if id(o) in group_ids or o.is_force_add():
            continue
        key, line = o.key_or_group, o.input_line
        if o.is_add():
            if _lookup_quiet(tree, key.split(".")) is not _MISSING:
                raise FermixError(f"`{line}` adds {key}, which exists already; write {line[1:]} to change it")
            continue
        if o.is_delete():
            if _lookup_quiet(tree, key.split(".")) is _MISSING:
                raise FermixError(f"`{line}` deletes {key}, which the config does not have")
            continue
        default = _lookup(tree, key, line)
        for value in _values(o):
            problem = type_problem(key, value, default)
            if problem and not (declared and declared(key, value, base)):
                shown = _shown(o, value)
                raise FermixError(f"{key} must be {problem} (its default is {_text(default)}), got `{shown}`")
    if any(_needs_hydra(o) for o in overrides):
        _compose(config_dir, config_name, [_first_choice(o) for o in overrides])


def _needs_hydra(override: Any) -> bool:
    """Overrides whose outcome the checks above do not settle: additions, deletions, packages, merges."""
    values = _values(override) if not override.is_delete() else []
    return (
        override.is_add() or override.is_force_add() or override.is_delete() or override.package is not None
        or any(isinstance(v, dict) for v in values)
    )


# --- the type rule -------------------------------------------------------------------------------
def type_problem(key: str, value: Any, default: Any) -> str | None:
    """None when `value` may replace `default` at `key`; else what it must be (e.g. "an integer")."""
    if value is None or default is None or _interpolated(default):
        return None
    if key in WIDER:
        allowed = WIDER[key]
        ok = isinstance(value, allowed) and not (isinstance(value, bool) and bool not in allowed)
        return None if ok else " or ".join(_NAMES[t] for t in allowed)
    if isinstance(default, bool):
        return None if isinstance(value, bool) else "true or false"
    if isinstance(default, int):
        return None if isinstance(value, int) and not isinstance(value, bool) else "an integer"
    if isinstance(default, float):
        return None if isinstance(value, int | float) and not isinstance(value, bool) else "a number"
    if isinstance(default, str):
        return None if isinstance(value, str | int | float) and not isinstance(value, bool) else "a string"
    if isinstance(default, list):
        return None if isinstance(value, list) else "a list such as [a, b]"
    if isinstance(default, dict):
        return None if isinstance(value, dict) else "a mapping such as {key: value}"
    return None


_NAMES = {int: "an integer", str: "a string", list: "a list", bool: "true or false", float: "a number"}


def method_declares(key: str, value: Any, cfg: Any) -> bool:
    """True when `key` is a top-level option of the chosen method whose Config dataclass declares
    a type admitting `value` (imports the method, so it is asked only about refused values)."""
    parts = key.split(".")
    if len(parts) != 2 or parts[0] != "method":
        return False
    from dataclasses import fields

    from fermix.registry import METHODS

    try:
        cls = METHODS.get(str(cfg.method.name))
        hints = typing.get_type_hints(cls.Config)
    except Exception:  # an unknown method or unresolvable hints: no opinion
        return False
    if parts[1] not in {f.name for f in fields(cls.Config)}:
        return False
    return _admits(hints.get(parts[1], Any), value)


def _admits(hint: Any, value: Any) -> bool:
    if hint is Any:
        return True
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_admits(h, value) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint in (bool, str):
        return isinstance(value, hint)
    if origin in (list, tuple) or hint in (list, tuple) or origin is typing.Sequence:
        return isinstance(value, list)
    if origin is dict or hint is dict:
        return isinstance(value, dict)
    return False


# --- parsing -----------------------------------------------------------------------------------
def _parse(lines: Iterable[str]) -> list[Any]:
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    parser = OverridesParser.create()
    parsed = []
    for line in lines:
        try:
            parsed.extend(parser.parse_overrides([line]))
        except OverrideParseException as exc:
            reasons = [r.strip() for r in str(exc).splitlines() if r.strip()]
            reasons = [r for r in reasons if not r.startswith(("Error parsing", "See https"))] or reasons
            reason = reasons[0].rstrip(".")
            raise FermixError(
                f"cannot read the override `{line}` ({reason}); write key=value, quoting values with spaces "
                f"or special characters"
            ) from None
    return parsed


def _is_hydra(key: str) -> bool:
    return key == "hydra" or key.startswith(("hydra.", "hydra/"))


def _is_group(config_dir: Path, key: str) -> bool:
    return "." not in key and (config_dir / key).is_dir()


def _enumerable(override: Any) -> bool:
    return override.value_type.name in ("SIMPLE_CHOICE_SWEEP", "CHOICE_SWEEP", "RANGE_SWEEP")


def _values(override: Any) -> list[Any]:
    if not override.is_sweep_override():
        return [override.value()]
    return [getattr(v, "text", v) for v in override.sweep_iterator()]  # QuotedString -> str


def _shown(override: Any, value: Any) -> str:
    """The offending value as the user wrote it (one element of a sweep: that element)."""
    if override.is_sweep_override():
        return "null" if value is None else str(value)
    return override.input_line.split("=", 1)[1] if "=" in override.input_line else override.input_line


def _first_choice(override: Any) -> str:
    """The override as Hydra would compose it for the first job of a sweep."""
    if not override.is_sweep_override():
        return override.input_line
    key, _ = override.input_line.split("=", 1)
    return f"{key}={next(iter(override.sweep_string_iterator()))}"


# --- composition -------------------------------------------------------------------------------
def _compose(config_dir: Path, config_name: str, overrides: list[str]) -> Any:
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException, MissingConfigException
    from omegaconf.errors import OmegaConfBaseException

    GlobalHydra.instance().clear()  # a job that ran earlier in this process leaves Hydra initialised
    try:
        with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
            return compose(config_name=config_name, overrides=overrides)
    except MissingConfigException as exc:
        raise FermixError(_missing_option(exc, overrides)) from None
    except (HydraException, OmegaConfBaseException) as exc:
        raise FermixError(_composition_sentence(exc)) from None


def _missing_option(exc: Any, overrides: list[str]) -> str:
    missing = str(getattr(exc, "missing_cfg_file", "") or "")
    options = list(getattr(exc, "options", None) or [])
    if "/" in missing and options:
        group, choice = missing.rsplit("/", 1)
        close = difflib.get_close_matches(choice, options, n=1)
        hint = f" (did you mean `{close[0]}`?)" if close else ""
        return f"unknown {group} `{choice}`{hint}; choose from {', '.join(options)}"
    return _first_line(str(exc))


def _composition_sentence(exc: BaseException) -> str:
    cause = exc.__cause__
    full_key = getattr(cause, "full_key", None)
    if full_key and "not in struct" in str(cause):
        return f"unknown config key `{full_key}`; add a new key with a + in front (+{full_key}=...)"
    return _first_line(str(exc)).rstrip(".")


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), text.strip())


# --- looking a key up ---------------------------------------------------------------------------
def _lookup(tree: Any, key: str, line: str) -> Any:
    """The default at dotted `key` in the plain config tree; one sentence when there is none."""
    parts = key.split(".")
    node = tree
    for depth, part in enumerate(parts):
        here = ".".join(parts[:depth])
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, dict | list):
            raise FermixError(_unknown_key(tree, parts, depth, line))
        else:
            raise FermixError(f"`{line}`: {here} is a single value, not a group of options")
    return node


def _unknown_key(tree: Any, parts: list[str], depth: int, line: str) -> str:
    key = ".".join(parts)
    parent = tree
    for part in parts[:depth]:
        parent = parent[part] if isinstance(parent, dict) else parent[int(part)]
    siblings = [str(k) for k in parent] if isinstance(parent, dict) else []
    prefix = ".".join(parts[:depth])
    for close in difflib.get_close_matches(parts[depth], siblings, n=3, cutoff=0.6):
        candidate = [*parts[:depth], close, *parts[depth + 1 :]]
        if _lookup_quiet(tree, candidate) is not _MISSING:
            return f"unknown config key `{key}` in `{line}` (did you mean `{'.'.join(candidate)}`?)"
    where = f"under `{prefix}`" if prefix else "at the top level"
    listed = ", ".join(siblings[:25]) + (", ..." if len(siblings) > 25 else "")
    return (
        f"unknown config key `{key}` in `{line}`; the keys {where} are {listed} "
        f"(write +{key}=... to add a new one)"
    )


def _lookup_quiet(tree: Any, parts: list[str]) -> Any:
    node = tree
    for part in parts:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return _MISSING
    return node


def _interpolated(value: Any) -> bool:
    return isinstance(value, str) and ("${" in value or value == "???")


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return f"`{value}`"
    return str(value)
