"""Every command written in the README, the docs, the dataset READMEs, the config headers and the
docstrings of benchmarks/ and scripts/ runs as written.

A command is a line of a fenced code block, an inline `code` span, a config comment or a docstring
line that starts with `fermix `, `python -m fermix `, `torchrun ... -m fermix ` (after `VAR=x`,
`nice -n N`, `srun ...`), or `python benchmarks/X.py` / `python scripts/X.py`. Each fermix command
goes through what the CLI does before a job starts (fermix.cli: check_test_args, check_overrides,
check_ckpt_arg), is composed by Hydra with the subcommand's primary config (one composition per
job of a `-m` sweep), and is validated the way the job validates its config before any work
(`train`: the method's Config, a trainable dataset; `preprocess`: its settings; `test`: dataset
keys against the checkpoint's config). Nothing trains. Placeholders (PATH, DIR, <run>, ...,
/path/to/x, N) become real temporary paths, a tiny fermix checkpoint, or a number. A script
command needs the script to exist and to define every `--flag` it is given (read from its
argparse calls with ast). Test ids are `file:line`, so a failure names the line to fix.
"""

from __future__ import annotations

import ast
import contextlib
import copy
import io
import itertools
import re
import shlex
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from fermix.cli import JOBS, check_ckpt_arg, check_job_overrides, check_test_args, config_dir
from fermix.errors import FermixError

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = config_dir()

# Lines that hold `fermix ...` but are not commands, keyed by (file, the extracted text); each
# says why. Everything else that starts like a command must run.
NOT_COMMANDS: dict[tuple[str, str], str] = {
    ("docs/errors.md", "fermix test ckpt="): "a table cell naming the key (`fermix test ckpt=` or `resume=`)",
    ("docs/errors.md", "fermix predict needs ckpt=PATH, a .ckpt that fermix train wrote (e.g. "
     "runs/.../checkpoints/best.ckpt)"): "the error message fermix prints, quoted",
    ("docs/report.md", "fermix report needs runs=DIR|GLOB: ..."): "the error message fermix prints, quoted",
    ("configs/experiment/au_align_rafdb.yaml", "fermix preprocess dataset=rafdb writes here by default"):
        "a comment on the value: the folder that command writes",
    ("docs/architecture.md", "fermix <command>"): "the CLI's shape: <command> is any subcommand",
    ("benchmarks/trainer_overhead.py", "fermix   lightning.Trainer + FermixModule exactly as `fermix train` builds "
     "them (loggers, progress,"): "a definition list: `fermix` names the timed loop (its `fermix train` is checked)",
}  # fmt: skip

_SUBCOMMANDS = (*JOBS, "list")
_LAUNCH = r"(?:[A-Z_][A-Z0-9_]*=\S*\s+)*(?:nice\s+-n\s*\d+\s+)?"  # OMP_NUM_THREADS=1 nice -n 10 ...
_FERMIX = r"(?:torchrun\s.*?-m\s+fermix|srun\s.*?-m\s+fermix|python3?\s+-m\s+fermix|fermix)\s"
_SCRIPT = r"python3?\s+(?:benchmarks|scripts)/"
# A line or span that starts with this is a command (so a typo in the subcommand is caught) ...
_PREFIX = re.compile(rf"{_LAUNCH}(?:{_FERMIX}|{_SCRIPT})")
# ... and in the middle of a config comment, `fermix` must be followed by a subcommand: there
# "fermix keeps the IEMOCAP protocol" is prose.
_NAMED = "|".join(re.escape(c) for c in (*_SUBCOMMANDS, "--help", "-h", "--version", "-V"))
_PREFIX_IN_PROSE = re.compile(rf"(?<![\w`/.=-]){_LAUNCH}(?:{_FERMIX}+(?:{_NAMED})(?=\s|$)|{_SCRIPT})")
_FENCE = re.compile(r"^\s*(```|~~~)")
_SPAN = re.compile(r"(?<!`)`([^`]+)`(?!`)")
_HYDRA_FLAGS_WITH_VALUE = {"--cfg", "-c", "-p", "--package", "--config-name", "-cn", "--config-dir", "-cd",
                           "--config-path", "-cp", "--info", "-i"}  # fmt: skip
_HYDRA_FLAGS = {"-m", "--multirun", "-h", "--help", "--hydra-help", "--resolve", "--version", "-r", "--run",
                "--shell-completion", "-sc"}  # fmt: skip
_CKPT_KEYS = {"ckpt", "method.cnn_checkpoint", "resume"}


@dataclass(frozen=True)
class Command:
    """One documented command: where it is (file:line) and its text."""

    where: str
    text: str

    @property
    def file(self) -> str:
        return self.where.rsplit(":", 1)[0]


# --- extraction ------------------------------------------------------------------------------
def strip_comment(line: str) -> str:
    """The line without a shell `# comment` (a # at the start or after a blank, outside quotes)."""
    quote = ""
    for i, ch in enumerate(line):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
    return line.rstrip()


def _logical_lines(lines: Sequence[tuple[int, str]]) -> Iterator[tuple[int, str]]:
    """Join `\\` continuations; yield (first line number, joined text without comments)."""
    start, parts = None, []
    for number, raw in lines:
        text = strip_comment(raw) if not raw.rstrip().endswith("\\") else raw.rstrip()
        if start is None:
            start = number
        if text.endswith("\\"):
            parts.append(strip_comment(text[:-1]))
            continue
        parts.append(text)
        yield start, " ".join(p.strip() for p in parts if p.strip())
        start, parts = None, []
    if parts:
        yield start, " ".join(p.strip() for p in parts if p.strip())


def _commands_in(text: str, anywhere: bool = False) -> list[str]:
    """The commands a logical line holds (`a && b` is two). `anywhere`: a command may follow prose
    on the line (a config comment: `... is a dataset: fermix train dataset=...`)."""
    found = []
    for piece in re.split(r"\s(?:&&|;)\s", text):
        piece = piece.strip()
        match = _PREFIX_IN_PROSE.search(piece) if anywhere else _PREFIX.match(piece)
        if match:
            found.append(piece[match.start() :].strip())
    return found


def _spans(text: str) -> Iterator[tuple[int, str]]:
    """Inline code spans (also across a line break inside a paragraph): (line, content)."""
    for match in _SPAN.finditer(text):
        content = match.group(1)
        if "\n\n" in content:
            continue
        yield text.count("\n", 0, match.start()) + 1, " ".join(content.split())


def extract_markdown(text: str, name: str) -> list[tuple[int, str]]:
    lines = text.splitlines()
    fenced: list[tuple[int, str]] = []
    prose = []
    inside = False
    for number, line in enumerate(lines, 1):
        if _FENCE.match(line):
            inside = not inside
            prose.append("")
            continue
        if inside:
            fenced.append((number, line))
            prose.append("")
        else:
            prose.append(line)
    out = [(n, c) for n, t in _logical_lines(fenced) for c in _commands_in(t)]
    out += [(n, s) for n, s in _spans("\n".join(prose)) if _PREFIX.match(s)]
    return sorted(out)


def extract_comments(text: str, name: str) -> list[tuple[int, str]]:
    """Commands in YAML `#` comments: code spans, and a command written out to the end of the line."""
    comments = []
    for number, line in enumerate(text.splitlines(), 1):
        at = line.find("#")
        comments.append((number, line[at + 1 :] if at >= 0 else ""))
    out: list[tuple[int, str]] = []
    for number, comment in comments:
        out += [(number, s) for _, s in _spans(comment) if _PREFIX.match(s)]
    plain = [(n, _SPAN.sub(" ", c)) for n, c in comments]
    for number, joined in _logical_lines(plain):
        out += [(number, c) for c in _commands_in(joined, anywhere=True)]
    return sorted(out)


def extract_docstring(source: str, name: str) -> list[tuple[int, str]]:
    """Commands in a module docstring: lines that start with one, and code spans."""
    tree = ast.parse(source)
    node = tree.body[0] if tree.body else None
    if not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)):
        return []
    lines = [(node.lineno + i, line) for i, line in enumerate(node.value.value.splitlines())]
    out = [(n, c) for n, t in _logical_lines(lines) for c in _commands_in(t)]
    out += [(node.lineno + n - 1, s) for n, s in _spans(node.value.value) if _PREFIX.match(s)]
    return sorted(set(out))


def documented_files() -> list[Path]:
    files = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    files += sorted((ROOT / "datasets").rglob("*.md")) + sorted(CONFIGS.rglob("*.md"))
    files += sorted(CONFIGS.rglob("*.yaml"))
    files += sorted((ROOT / "benchmarks").rglob("*.py")) + sorted((ROOT / "scripts").glob("*.py"))
    return files


def extract(text: str, name: str) -> list[Command]:
    """The commands of one file (`name` is its path relative to the checkout, which picks the reader)."""
    if name.endswith(".md"):
        found = extract_markdown(text, name)
    elif name.endswith(".yaml"):
        found = extract_comments(text, name)
    else:
        found = extract_docstring(text, name)
    return [Command(f"{name}:{number}", command) for number, command in found]


def all_commands() -> list[Command]:
    commands = []
    for path in documented_files():
        commands += extract(path.read_text(encoding="utf-8"), path.relative_to(ROOT).as_posix())
    return commands


# --- reading one command ---------------------------------------------------------------------
def tokens(command: str) -> list[str]:
    """shlex tokens, with `<placeholder words>` made one token and a title's ` — prose` cut off."""
    command = command.split(" — ", 1)[0]
    command = re.sub(r"<[^<>]*>", lambda m: "<" + re.sub(r"\W+", "_", m.group(0)) + ">", command)
    try:
        words = shlex.split(command)
    except ValueError as exc:
        raise FermixError(f"cannot split `{command}` like a shell ({exc})") from None
    while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", words[0]):
        words.pop(0)
    if words[:2] == ["nice", "-n"]:
        words = words[3:]
    elif words and words[0].startswith("nice"):
        words = words[1:]
    return words


def fermix_args(command: str) -> list[str] | None:
    """The arguments after `fermix` (subcommand first); None for a script command."""
    words = tokens(command)
    for i, word in enumerate(words):
        if word == "fermix" and (i == 0 or words[i - 1] == "-m"):
            return words[i + 1 :]
    return None


def _unbracket(word: str) -> str:
    """`[split=val]` -> `split=val` (a usage line's optional argument)."""
    if word.startswith("["):
        word = word[1:]
    if word.endswith("]") and word.count("]") > word.count("["):
        word = word[:-1]
    return word


def is_placeholder(value: str) -> bool:
    return bool(
        re.search(r"<\w*>|\.\.\.|PATH|/path/to/|^\$", value)
        or re.fullmatch(r"[A-Z][A-Z0-9_]*(?:\|[A-Z][A-Z0-9_]*)*", value)
    )


@dataclass
class Placeholders:
    """Real stand-ins for a command's placeholders: temporary folders and a tiny fermix checkpoint."""

    tmp: Path
    checkpoint: Path

    def value(self, key: str, value: str) -> list[str]:
        """The values a placeholder stands for (several: `method=<m>` is every method)."""
        key = key.lstrip("+~")
        if key in _CKPT_KEYS:
            return [str(self.checkpoint)]
        if value == "N" or value.startswith("$"):
            return ["2"]
        if _is_group(key):  # dataset=OTHER / NAME: an image folder; method=<m>: every method
            return ["imagefolder"] if key == "dataset" else _options(key)
        folder = self.tmp / re.sub(r"\W+", "_", key)
        folder.mkdir(parents=True, exist_ok=True)
        return [str(folder)]


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIGS / group).glob("*.yaml"))


def _is_group(key: str) -> bool:
    key = key.lstrip("+~")
    return "." not in key and "/" not in key and (CONFIGS / key).is_dir()


def concrete_args(command: str, args: Sequence[str], stand_in: Placeholders) -> list[list[str]]:
    """The argument lists a documented fermix command stands for: placeholders replaced, `[opt]`
    unbracketed, `...` (more arguments) dropped, `a|b|c` alternatives (a usage line) one list each.
    A checkpoint path is the file an earlier step writes (`ckpt=best.ckpt`): the tiny checkpoint;
    `fermix test ... split=val` elides the ckpt= it needs in its `...`. Anything that is neither a
    Hydra flag nor a key=value override is an error: prose."""
    out: list[list[str]] = [[]]
    words = [_unbracket(w) for w in args]
    elided = False
    i = 0
    while i < len(words):
        word = words[i]
        i += 1
        if word in ("...", "") or re.fullmatch(r"<\w*>|\$\w+", word):
            elided = True  # more arguments: `...`, `<run_overrides>`, `$EXTRA`
            continue
        if word in _HYDRA_FLAGS:
            out = [[*o, word] for o in out]
            continue
        if word in _HYDRA_FLAGS_WITH_VALUE:
            if i < len(words):
                out = [[*o, word, words[i]] for o in out]
                i += 1
            continue
        if "=" not in word and not word.startswith("~"):
            raise FermixError(f"`{word}` is neither a key=value override nor a Hydra flag (is this prose?)")
        key, _, value = word.partition("=")
        if value.startswith("[") and "..." in value:  # eval.remove=[t,av,...]
            value = re.sub(r",?\s*\.\.\.", "", value)
        if is_placeholder(value) or (key.lstrip("+") in _CKPT_KEYS and value and not Path(value).exists()):
            choices = stand_in.value(key, value)
        elif "|" in value and not value.startswith(("'", '"', "[")):
            choices = value.split("|")  # format=torchscript|onnx|safetensors
        else:
            choices = [value]
        out = [[*o, f"{key}={c}" if "=" in word else word] for o in out for c in choices]
    needs_ckpt = command in ("test", "predict", "export")
    if elided and needs_ckpt and not any(a.startswith("ckpt=") for a in out[0]):
        out = [[f"ckpt={stand_in.checkpoint}", *o] for o in out]
    return out


def trained_dataset(ckpt: str | None) -> str | None:
    """The dataset a documented checkpoint path names (`runs/<method>_<dataset>/...`), else None."""
    match = re.search(r"runs/(\w+?)/", ckpt or "")
    if not match:
        return None
    for method in _options("method"):
        rest = match.group(1).removeprefix(f"{method}_")
        if rest != match.group(1) and rest in _options("dataset"):
            return rest
    return None


# --- what the CLI does before a job runs ---------------------------------------------------------
def cli_checks(command: str, args: list[str]) -> list[str]:
    """fermix.cli.main's checks for `command`; the arguments Hydra then gets. A refusal is raised."""
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            if command == "test":
                return check_test_args(args)
            check_job_overrides(command, args)
            if command in ("predict", "export"):
                check_ckpt_arg(command, args)
    except SystemExit:
        raise FermixError(stderr.getvalue().strip().removeprefix("fermix: error: ")) from None
    return args


def sweep_jobs(overrides: list[str]) -> list[list[str]]:
    """One override list per job of a `-m` sweep (Hydra's basic sweeper: the cartesian product)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    per_key: list[list[str]] = []
    for line in overrides:
        parsed = OverridesParser.create().parse_overrides([line])[0]
        if parsed.is_sweep_override() and parsed.value_type.name in ("SIMPLE_CHOICE_SWEEP", "CHOICE_SWEEP"):
            key = line.split("=", 1)[0]
            per_key.append([f"{key}={v}" for v in parsed.sweep_string_iterator()])
        else:
            per_key.append([line])
    return [list(job) for job in itertools.product(*per_key)]


@cache
def _launcher_installed() -> bool:
    try:
        import hydra_plugins.hydra_submitit_launcher  # noqa: F401
    except ImportError:
        return False
    return True


def compose(command: str, overrides: Sequence[str]) -> Any:
    """The job's config as Hydra composes it, with the CLI's one-sentence errors (fermix.config_check).

    In two steps, as Hydra itself does them (hydra/_internal/config_loader_impl.py): the defaults
    list (group choices; memoised by the module fixture, as many commands share it), then the
    value overrides applied in struct mode (ConfigLoaderImpl._apply_overrides_to_config). This
    costs one composition per set of group choices instead of one per command."""
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from fermix import config_check
    from fermix.engine.rundir import register_resolvers

    register_resolvers()
    defaults = [o for o in overrides if _shapes_defaults(o)]
    values = [o for o in overrides if not _shapes_defaults(o)]
    cfg = config_check._compose(CONFIGS, command, defaults)
    if not values:
        return cfg
    base, cfg = cfg, copy.deepcopy(cfg)
    try:
        ConfigLoaderImpl._apply_overrides_to_config(OverridesParser.create().parse_overrides(values), cfg)
    except (HydraException, OmegaConfBaseException) as exc:
        raise FermixError(config_check._sentence(exc, lambda: base, values)) from None
    return cfg


def _shapes_defaults(override: str) -> bool:
    """A group choice (`method=iern`, `+experiment=x`, `hydra/launcher=...`) or a hydra.* setting."""
    key = override.split("=", 1)[0].lstrip("+~")
    return "/" in key or _is_group(key) or key == "hydra" or key.startswith("hydra.")


def validate_job(command: str, cfg: Any, overrides: Sequence[str], trained: str | None) -> None:
    """What the job checks in its config before it starts working. `trained`: for `fermix test`,
    the dataset the checkpoint was trained on when the documented path names it."""
    from omegaconf import OmegaConf

    from fermix.registry import BACKBONES, METHODS, dataset_adapter

    if command == "train":
        import fermix.methods  # noqa: F401  (registers the methods)
        from fermix.data.datasets.common import RawLayout

        resolved = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
        METHODS.get(resolved["method"]["name"]).make_config(resolved["method"])
        BACKBONES.get(resolved["backbone"]["name"])
        dataset = dataset_adapter(resolved["dataset"])
        if isinstance(dataset, type) and issubclass(dataset, RawLayout):
            dataset(resolved["dataset"])  # refuses: a raw layout is for fermix preprocess
    elif command == "preprocess":
        from fermix.preprocess import settings
        from fermix.preprocess.run import raw_items_of

        resolved = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
        settings.settings_from_config(resolved["preprocess"])
        settings.num_workers(resolved["preprocess"])
        settings.limit(resolved["preprocess"])
        settings.progress_mode(resolved.get("progress"))
        if not hasattr(dataset_adapter(resolved["dataset"]), "raw_items"):
            raw_items_of(resolved["dataset"]["name"], resolved["dataset"])  # its refusal sentence
    elif command == "test":
        if str(cfg.split) not in ("train", "val", "test"):
            raise FermixError(f"split={cfg.split} is not one of train, val, test")
        if not any(o.split("=", 1)[0].lstrip("+") == "dataset" for o in overrides):
            _check_test_dataset_keys(overrides, trained)  # else Hydra composed the new dataset's keys


def _check_test_dataset_keys(overrides: Sequence[str], trained: str | None) -> None:
    """`fermix test ckpt=X dataset.K=V` adjusts the checkpoint's own dataset config, which Hydra
    cannot check: K must be an option of that dataset (of some dataset, when the doc's checkpoint
    path does not say which), with a value of its type."""

    names = [trained] if trained else _options("dataset")
    for line in overrides:
        key, _, value = line.lstrip("+").partition("=")
        if not key.startswith("dataset."):
            continue
        problems = []
        for name in names:
            default = _dataset_option(name, key.split(".")[1:])
            if default is _ABSENT:
                problems.append(f"dataset {name} has no option {key}")
            elif problem := _type_problem(_parse_value(value), default):
                problems.append(f"{key} must be {problem} for dataset {name}, got `{value}`")
            else:
                break
        else:
            raise FermixError(f"`{line}`: " + "; ".join(problems[:1]) + ("" if trained else " (nor has any dataset)"))


_ABSENT = object()


def _type_problem(value: Any, default: Any) -> str | None:
    """What `value` must be to replace a dataset option's YAML `default` (null and interpolations take anything)."""
    if value is None or default is None or (isinstance(default, str) and "${" in default):
        return None
    kinds = [(bool, (bool,), "true or false"), (int, (int,), "an integer"), (float, (int, float), "a number")]
    kinds += [(str, (str, int, float), "a string"), (list, (list,), "a list"), (dict, (dict,), "a mapping")]
    for kind, ok, words in kinds:
        if isinstance(default, kind):
            return None if isinstance(value, ok) and (kind is bool or not isinstance(value, bool)) else words
    return None


@cache
def _dataset_config(name: str) -> Any:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(OmegaConf.load(CONFIGS / "dataset" / f"{name}.yaml"), resolve=False)


def _dataset_option(name: str, parts: Sequence[str]) -> Any:
    node = _dataset_config(name)
    for part in parts:
        if not isinstance(node, dict) or part not in node:
            return _ABSENT
        node = node[part]
    return node


def _parse_value(value: str) -> Any:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create().parse_overrides([f"x={value}"])[0].value()


def check_fermix(args: Sequence[str], stand_in: Placeholders) -> int:
    """Run every concrete form of one documented fermix command through the CLI's checks, Hydra's
    composition and the job's config validation; return how many jobs were composed."""
    from omegaconf.errors import OmegaConfBaseException

    if not args:
        return 0  # `fermix` alone prints the usage
    command, rest = args[0], list(args[1:])
    if command in ("-h", "--help", "help", "-V", "--version"):
        return 0
    if command not in _SUBCOMMANDS:
        raise FermixError(f"unknown command `{command}`; choose from {', '.join(_SUBCOMMANDS)}")
    if command == "list":
        from fermix.registry import REGISTRIES

        bad = [k for k in rest if k not in REGISTRIES]
        if bad:
            raise FermixError(f"cannot list `{bad[0]}`; choose from {', '.join(REGISTRIES)}")
        return 0
    if not rest:
        return 0  # a bare `fermix test` names the subcommand in prose
    trained = trained_dataset(next((a.split("=", 1)[1] for a in rest if a.startswith("ckpt=")), None))
    composed = 0
    for concrete in concrete_args(command, rest, stand_in):
        hydra_args = cli_checks(command, concrete)
        flags = [a for a in hydra_args if a.startswith("-")]
        if set(flags) - {"-m", "--multirun"}:
            hydra_args = _without_flag_values(hydra_args)  # --help / --cfg: Hydra prints the config
        overrides = [a for a in hydra_args if not a.startswith("-")]
        if not _launcher_installed():  # an optional plugin (docs/distributed.md): not a dependency
            overrides = [o for o in overrides if not o.startswith(("hydra/launcher=", "hydra.launcher."))]
        jobs = sweep_jobs(overrides) if {"-m", "--multirun"} & set(flags) else [overrides]
        for job in jobs:
            cfg = compose(command, job)
            try:
                validate_job(command, cfg, job, trained)
            except OmegaConfBaseException as exc:
                raise FermixError(f"{exc.__class__.__name__}: {str(exc).splitlines()[0]}") from None
            composed += 1
    return composed


def _without_flag_values(args: list[str]) -> list[str]:
    out, skip = [], False
    for a in args:
        if skip:
            skip = False
        elif a in _HYDRA_FLAGS_WITH_VALUE:
            skip = True
        else:
            out.append(a)
    return out


# --- script commands -------------------------------------------------------------------------
def script_flags(path: Path) -> set[str]:
    """Every option string of the argparse `add_argument` calls in the script and in the modules
    next to it that it imports (e.g. benchmarks/parity/_common.py)."""
    flags: set[str] = {"-h", "--help"}
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_argument":
            flags |= {a.value for a in node.args if isinstance(a, ast.Constant) and str(a.value).startswith("-")}
        modules = [a.name for a in node.names] if isinstance(node, ast.Import) else []
        modules += [node.module or ""] if isinstance(node, ast.ImportFrom) else []
        for module in modules:
            sibling = path.with_name(module.rsplit(".", 1)[-1] + ".py")
            if module and sibling.is_file() and sibling != path:
                flags |= script_flags(sibling)
    return flags


def check_script(command: str) -> None:
    words = tokens(command)
    at = next((i for i, w in enumerate(words) if re.fullmatch(r"(benchmarks|scripts)/\S+\.py", w)), None)
    if at is None:
        raise FermixError(f"`{command}` is neither a fermix command nor a python benchmarks|scripts/X.py command")
    path = ROOT / words[at]
    if not path.is_file():
        raise FermixError(f"{words[at]} does not exist")
    defined = script_flags(path)
    for word in (_unbracket(w) for w in words[at + 1 :]):
        flag = word.split("=", 1)[0]
        if re.fullmatch(r"--?[A-Za-z][\w-]*", flag) and flag not in defined:
            raise FermixError(f"{words[at]} has no option {flag}; it defines {', '.join(sorted(defined))}")


def check_command(cmd: Command, stand_in: Placeholders) -> None:
    args = fermix_args(cmd.text)
    if args is None:
        check_script(cmd.text)
    else:
        check_fermix(args, stand_in)


# --- the tests -------------------------------------------------------------------------------
COMMANDS = all_commands()


@pytest.fixture(scope="module")
def stand_in(tmp_path_factory) -> Iterator[Placeholders]:
    """Placeholders' stand-ins, and Hydra compositions memoised for the module (many documented
    commands compose the same config; each composition costs ~0.1 s)."""
    import torch

    from fermix import config_check
    from fermix.engine import checkpoint as ck

    tmp = tmp_path_factory.mktemp("documented")
    ckpt = tmp / "runs" / "erm_synthetic" / "tiny" / "checkpoints" / "best.ckpt"
    ckpt.parent.mkdir(parents=True)
    config = _plain(compose("train", []))
    meta = {"format": ck.FORMAT, "format_version": ck.FORMAT_VERSION, "config": config, "method": "erm", "epoch": 0}
    ck.save_atomic({"state_dict": {"method.w": torch.zeros(1)}, "fermix": meta}, ckpt)

    original = config_check._compose
    memo: dict[tuple, Any] = {}

    def memoised(config_dir: Path, config_name: str, overrides: list[str]) -> Any:
        key = (str(config_dir), config_name, tuple(overrides))
        if key not in memo:
            try:
                memo[key] = original(config_dir, config_name, overrides)
            except FermixError as exc:
                memo[key] = exc
        if isinstance(memo[key], FermixError):
            raise memo[key]
        return memo[key]

    from fermix import cli
    from fermix.protocols import registered

    every_protocol = {key: protocol for key, (protocol, _) in registered().items()}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(config_check, "_compose", memoised)
        # the stand-in checkpoint stands for any method and dataset: it offers every evaluation protocol
        patch.setattr(cli, "_evaluation_protocols", lambda ckpt, dataset: every_protocol)
        yield Placeholders(tmp, ckpt)


def _plain(cfg: Any) -> Any:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(cfg, resolve=False)


def _ids(commands: Sequence[Command]) -> list[str]:
    seen: dict[str, int] = {}
    ids = []
    for c in commands:
        seen[c.where] = seen.get(c.where, 0) + 1
        ids.append(c.where if seen[c.where] == 1 else f"{c.where}#{seen[c.where]}")
    return ids


def test_the_docs_hold_commands_to_check():
    files = {c.file for c in COMMANDS}
    assert len(COMMANDS) > 150, len(COMMANDS)
    assert {"README.md", "docs/distributed.md", "configs/train.yaml", "scripts/import_iern.py"} <= files


@pytest.mark.parametrize("cmd", COMMANDS, ids=_ids(COMMANDS))
def test_documented_command_runs(cmd: Command, stand_in: Placeholders):
    key = (cmd.file, cmd.text)
    if key in NOT_COMMANDS:
        pytest.skip(f"not a command: {NOT_COMMANDS[key]}")
    try:
        check_command(cmd, stand_in)
    except FermixError as exc:
        pytest.fail(f"{cmd.where}: `{cmd.text}` fails: {exc}", pytrace=False)


def test_every_allowlisted_line_is_still_there():
    present = {(c.file, c.text) for c in COMMANDS}
    assert set(NOT_COMMANDS) <= present, set(NOT_COMMANDS) - present


# --- the checker catches what it should ------------------------------------------------------
SAMPLE = """# Title

Train with `fermix train method=erm dataset=synthetic` and then
`fermix test ckpt=runs/erm_synthetic/<run>/checkpoints/best.ckpt
split=val`.

```bash
OMP_NUM_THREADS=1 fermix train -m seed=1,2 \\
    trainer.max_epochs=1   # two runs
python -m fermix preprocess dataset=imagefolder dataset.root=PATH preprocess.out=DIR && fermix list methods
torchrun --nproc_per_node=2 -m fermix train trainer=ddp ...
nice -n 10 python scripts/import_iern.py SRC OUT.ckpt --fold v1
pip install fermix
```
"""


def test_extraction_finds_spans_fences_continuations_and_chains():
    found = [(c.where, c.text) for c in extract(SAMPLE, "doc.md")]
    assert found == [
        ("doc.md:3", "fermix train method=erm dataset=synthetic"),
        ("doc.md:4", "fermix test ckpt=runs/erm_synthetic/<run>/checkpoints/best.ckpt split=val"),
        ("doc.md:8", "OMP_NUM_THREADS=1 fermix train -m seed=1,2 trainer.max_epochs=1"),
        ("doc.md:10", "fermix list methods"),
        ("doc.md:10", "python -m fermix preprocess dataset=imagefolder dataset.root=PATH preprocess.out=DIR"),
        ("doc.md:11", "torchrun --nproc_per_node=2 -m fermix train trainer=ddp ..."),
        ("doc.md:12", "nice -n 10 python scripts/import_iern.py SRC OUT.ckpt --fold v1"),
    ]


def test_every_sample_command_passes(stand_in):
    for cmd in extract(SAMPLE, "doc.md"):
        check_command(cmd, stand_in)


def test_config_header_commands_are_read_to_the_end_of_the_line():
    text = "# @package _global_\n# Example: fermix train experiment=erm_resnet18_imagefolder dataset.root=PATH\nx: 1\n"
    assert [c.text for c in extract(text, "configs/experiment/x.yaml")] == [
        "fermix train experiment=erm_resnet18_imagefolder dataset.root=PATH"
    ]


def test_usage_lines_titles_sweeps_and_alternatives_are_read(stand_in):
    """`[opt]` and a|b|c in a usage line, a title's prose after an em dash, every job of a sweep."""
    text = (
        "# fermix export — the inference-only model:\n"
        "#   fermix export ckpt=PATH format=torchscript|onnx|safetensors [out=DIR] [image_size=N]\n"
        "#   fermix train -m method=erm,iern dataset=synthetic_bias dataset.fold=v1,v2\n"
    )
    commands = extract(text, "configs/x.yaml")
    assert [c.where for c in commands] == ["configs/x.yaml:1", "configs/x.yaml:2", "configs/x.yaml:3"]
    assert [check_fermix(fermix_args(c.text), stand_in) for c in commands] == [0, 3, 4]


def test_a_parity_command_needs_its_script_and_flags(stand_in):
    """The `## Parity` sections of docs/methods/*.md: `python benchmarks/parity/<m>.py --checkout ...`."""
    (cmd,) = extract("```bash\npython benchmarks/parity/nope.py --checkout /path/to/repo\n```", "docs/methods/x.md")
    with pytest.raises(FermixError, match="does not exist"):
        check_command(cmd, stand_in)
    for script in sorted((ROOT / "benchmarks" / "parity").glob("[!_]*.py")):
        text = f"`python benchmarks/parity/{script.name} --checkout /path/to/repo`"
        check_command(extract(text, "docs/methods/x.md")[0], stand_in)


BROKEN = {
    "unknown key": ("```\nfermix train dataset.roott=PATH\n```", "dataset.roott"),
    "unknown key of a sweep job": ("```\nfermix train -m dataset=synthetic,imagefolder dataset.root=PATH\n```",
                                   "dataset.root"),
    "bad second value of a sweep": ("```\nfermix train -m method=erm,ermm\n```", "ermm"),
    "bad alternative of a usage line": ("# fermix train trainer.max_epochs=3|x\n", "integer"),
    "unknown group option": ("`fermix train method=ermm`", "ermm"),
    "unknown method option": ("```\nfermix train method.nope=1\n```", "nope"),
    "wrong type": ("```\nfermix train trainer.max_epochs=abc   # a comment\n```", "integer"),
    "model change at test": ("`fermix test ckpt=... method.name=iern`", "would change the model"),
    "unknown dataset option at test": ("```\nfermix test ckpt=... dataset.fold_typo=v2\n```", "fold_typo"),
    "option of another dataset at test": ("`fermix test ckpt=runs/erm_synthetic/<run>/checkpoints/best.ckpt "
                                          "dataset.root=/x`", "dataset synthetic has no option dataset.root"),
    "prose in a code line": ("```\nfermix train then evaluate it\n```", "prose"),
    "unknown subcommand": ("`fermix trian`", "trian"),
    "missing script": ("```\npython benchmarks/parity/nope.py --checkout /path/to/repo\n```", "does not exist"),
    "unknown script flag": ("```\npython scripts/import_iern.py A B --folds v1\n```", "--folds"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BROKEN), ids=list(BROKEN))
def test_a_broken_command_fails(case, stand_in):
    text, fragment = BROKEN[case]
    (cmd,) = extract(text, "doc.yaml" if text.startswith("#") else "doc.md")[-1:]
    with pytest.raises(FermixError, match=re.escape(fragment)):
        check_command(cmd, stand_in)


def test_the_example_experiment_chooses_the_dataset_its_header_sets_a_root_of(stand_in):
    """Issue 20: `fermix train experiment=erm_resnet18_imagefolder dataset.root=PATH` failed with
    `unknown config key dataset.root`, since the experiment left the default synthetic dataset."""
    assert check_fermix(["train", "experiment=erm_resnet18_imagefolder", "dataset.root=PATH"], stand_in) == 1
    assert compose("train", ["experiment=erm_resnet18_imagefolder"]).dataset.name == "imagefolder"
    with pytest.raises(FermixError, match=r"dataset\.root"):
        check_fermix(["train", "method=erm", "dataset=synthetic", "dataset.root=PATH"], stand_in)
