"""Leaf objects built from `_target_` configs with Hydra's `instantiate`, failing in one sentence.

Optimizers, schedulers, augmentation ops and loggers are named in their config by `_target_` (a
class or function written `module.Name`) with its arguments beside it; `_partial_: true` leaves out
what the engine supplies later (the parameters, the optimizer, the run folder). Hydra reports a
target that does not import, or an argument the target does not take, as a chained traceback. Here
that becomes one sentence naming the config key (docs/errors.md), so the error names what to fix.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import re
from collections.abc import Callable, Mapping
from typing import Any

from fermix.errors import FermixError


def instantiate(cfg: Mapping[str, Any], where: str, **kwargs: Any) -> Any:
    """`hydra.utils.instantiate(cfg)` with plain lists and dicts as arguments (`_convert_="all"`);
    `where` is the config key shown in errors (`optim`, `data.augment.ops[2]`)."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate as hydra_instantiate

    target = target_name(cfg, where)
    try:
        return hydra_instantiate(dict(cfg), _convert_="all", **kwargs)
    except InstantiationException as exc:
        cause = exc.__cause__
        if isinstance(cause, ImportError) or "Error locating target" in str(exc):
            raise FermixError(_not_importable(target, where)) from exc
        raise FermixError(_refused(cause if cause is not None else exc, target, where)) from exc
    except (TypeError, ValueError) as exc:  # raised outside Hydra's wrapper (e.g. while building a partial)
        raise FermixError(_refused(exc, target, where)) from exc


def call(factory: Callable[..., Any], where: str, target: str, *args: Any, **kwargs: Any) -> Any:
    """Call what `instantiate` built from a `_partial_: true` config (its `_target_` is `target`); the
    arguments it refuses only now (the config's and the engine's together) are reported as
    `instantiate` reports them."""
    try:
        return factory(*args, **kwargs)
    except FermixError:
        raise
    except (TypeError, ValueError) as exc:
        raise FermixError(_refused(exc, target, where, getattr(factory, "func", factory))) from exc


def target_name(cfg: Mapping[str, Any], where: str) -> str:
    """The `_target_` string; one sentence when there is none."""
    target = cfg.get("_target_") if isinstance(cfg, Mapping) else None
    if not isinstance(target, str) or not target:
        raise FermixError(
            f"{where} has no `_target_` (the class or function to build, written module.Name); "
            f"see the files in configs/ for examples"
        )
    return target


def accepts(func: Callable[..., Any], name: str) -> bool:
    """True when `func` has a parameter called `name` (how the engine offers a run value, such as
    the trainer's epochs, to the targets that ask for it)."""
    try:
        return name in inspect.signature(getattr(func, "func", func)).parameters
    except (TypeError, ValueError):
        return False


def _not_importable(target: str, where: str) -> str:
    module_name, _, attr = target.rpartition(".")
    hint = ""
    if module_name:
        try:
            module = importlib.import_module(module_name)
        except Exception:
            module = None
        if module is not None:
            close = difflib.get_close_matches(attr, [n for n in dir(module) if not n.startswith("_")], n=1)
            hint = f" (did you mean `{module_name}.{close[0]}`?)" if close else f" ({module_name} has no `{attr}`)"
        else:
            hint = f" (no module `{module_name}`)"
    return f"{where}._target_ `{target}` cannot be imported{hint}"


_UNEXPECTED = re.compile(r"unexpected keyword argument '(\w+)'")
_MISSING = re.compile(r"missing \d+ required (?:positional|keyword-only) arguments?: (.+)$")


def _refused(exc: BaseException, target: str, where: str, func: Any = None) -> str:
    text = str(exc).strip()
    if isinstance(exc, TypeError) and (m := _UNEXPECTED.search(text)):
        takes = _parameters(func if func is not None else _locate(target))
        listed = f"; it takes: {', '.join(takes)}" if takes else ""
        return f"{where}: `{target}` takes no argument `{m.group(1)}`{listed}"
    if isinstance(exc, TypeError) and (m := _MISSING.search(text)):
        names = re.findall(r"'(\w+)'", m.group(1))
        return f"{where}: `{target}` needs `{'`, `'.join(names)}`"
    reason = next((line.strip() for line in text.splitlines() if line.strip()), exc.__class__.__name__)
    reason = reason.split(". ")[0].rstrip(".")
    return f"{where}: `{target}` refused its arguments: {reason}"


def _locate(target: str) -> Any:
    try:
        from hydra.utils import get_object

        return get_object(target)
    except Exception:
        return None


def _parameters(func: Any) -> list[str]:
    if func is None:
        return []
    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return []
    return [p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and p.name != "self"]
