"""Safe loading and no network (issue 10 §4), proven on the source tree and on real runs.

- every `torch.load` in fermix's code passes `weights_only=True` (a checkpoint or weights file
  can then hold tensors and plain containers only, never code);
- pickle formats are read only through `fermix.data.safe_pickle` (the restricted unpickler);
- `fermix train` and `fermix test` work with the network switched off.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CODE_DIRS = ("src", "scripts", "benchmarks")
RESTRICTED_UNPICKLER = REPO / "src/fermix/data/safe_pickle.py"

# Calls that unpickle whatever a file says, i.e. run code named by the file.
UNSAFE_CALLS = {
    ("pickle", "load"), ("pickle", "loads"), ("pickle", "Unpickler"), ("pd", "read_pickle"),
    ("pandas", "read_pickle"), ("joblib", "load"), ("dill", "load"), ("dill", "loads"), ("cloudpickle", "load"),
    ("cloudpickle", "loads"), ("torch", "load"),
}  # fmt: skip


def python_files() -> list[Path]:
    files = [p for d in CODE_DIRS for p in (REPO / d).rglob("*.py")]
    assert len(files) > 50, "the scan must see the package"
    return sorted(files)


def calls(path: Path) -> list[ast.Call]:
    return [n for n in ast.walk(ast.parse(path.read_text(), str(path))) if isinstance(n, ast.Call)]


def dotted(func: ast.expr) -> tuple[str, str] | None:
    """`pickle.load` -> ("pickle", "load"); anything else -> None."""
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
        return func.value.id, func.attr
    return None


def keyword_is_true(call: ast.Call, name: str) -> bool:
    return any(k.arg == name and isinstance(k.value, ast.Constant) and k.value.value is True for k in call.keywords)


def where(path: Path, call: ast.Call) -> str:
    return f"{path.relative_to(REPO)}:{call.lineno}"


def test_every_torch_load_passes_weights_only_true():
    seen, unsafe = 0, []
    for path in python_files():
        for call in calls(path):
            if dotted(call.func) == ("torch", "load"):
                seen += 1
                if not keyword_is_true(call, "weights_only"):
                    unsafe.append(where(path, call))
    assert seen >= 3  # checkpoint.py, models/weights.py, the converters: the scan finds real calls
    assert not unsafe, f"torch.load without weights_only=True at {unsafe}"


def test_pickles_are_read_only_through_the_restricted_unpickler():
    unsafe = []
    for path in python_files():
        for call in calls(path):
            name = dotted(call.func)
            if name in UNSAFE_CALLS and name != ("torch", "load") and path != RESTRICTED_UNPICKLER:
                unsafe.append(f"{'.'.join(name)} at {where(path, call)}")
            if name == ("np", "load") and keyword_is_true(call, "allow_pickle"):
                unsafe.append(f"np.load(allow_pickle=True) at {where(path, call)}")
    assert not unsafe, unsafe


def test_the_scan_catches_an_unsafe_load(tmp_path):
    """The two scans above would see a violation (a check that cannot fail proves nothing)."""
    bad = tmp_path / "bad.py"
    bad.write_text("import pickle, torch\nx = torch.load('a.pt')\ny = pickle.loads(b'')\n")
    names = [dotted(c.func) for c in calls(bad)]
    assert ("torch", "load") in names and ("pickle", "loads") in names
    assert not keyword_is_true(calls(bad)[0], "weights_only")


# --- no network at run time --------------------------------------------------------------------
# A sitecustomize module, imported by every Python process that has it on its path, replaces
# socket creation for internet families with a function that records the attempt and raises.
NO_NETWORK = textwrap.dedent(
    """
    import os, socket

    _real_socket = socket.socket

    class _Guarded(_real_socket):
        def __init__(self, family=-1, type=-1, proto=-1, fileno=None):
            if fileno is None and family in (-1, socket.AF_INET, socket.AF_INET6):
                with open(os.environ["FERMIX_NETWORK_LOG"], "a") as log:
                    log.write(f"socket family={family} pid={os.getpid()}\\n")
                raise OSError("network access is disabled in this test")
            super().__init__(family, type, proto, fileno)

    def _no_dns(*args, **kwargs):
        with open(os.environ["FERMIX_NETWORK_LOG"], "a") as log:
            log.write(f"getaddrinfo {args[:2]}\\n")
        raise OSError("network access is disabled in this test")

    socket.socket = _Guarded
    socket.getaddrinfo = _no_dns
    """
)


def run_offline(args: list[str], cwd: Path, guard: Path, log: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("FERMIX_DEBUG", "HYDRA_FULL_ERROR")}
    env.update(PYTHONPATH=os.pathsep.join([str(guard), env.get("PYTHONPATH", "")]), FERMIX_NETWORK_LOG=str(log),
               OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")  # fmt: skip
    return subprocess.run([sys.executable, "-m", "fermix", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600, check=False)  # fmt: skip


@pytest.fixture
def offline(tmp_path) -> tuple[Path, Path]:
    guard = tmp_path / "guard"
    guard.mkdir()
    (guard / "sitecustomize.py").write_text(NO_NETWORK)
    return guard, tmp_path / "network.log"


def test_the_guard_blocks_and_records_a_connection(tmp_path, offline):
    guard, log = offline
    env = {**os.environ, "PYTHONPATH": str(guard), "FERMIX_NETWORK_LOG": str(log)}
    probe = "import socket\ntry:\n    socket.create_connection(('example.org', 80), 1)\nexcept OSError:\n    pass"
    subprocess.run([sys.executable, "-c", probe], env=env, check=True, timeout=60)
    assert "getaddrinfo" in log.read_text()


def test_train_and_test_run_with_the_network_disabled(tmp_path, offline):
    """The default dataset is generated on the spot and nothing is fetched: no socket is even opened."""
    guard, log = offline
    run_dir = tmp_path / "run"
    train = run_offline(
        ["train", "trainer.max_epochs=1", "trainer.accelerator=cpu", "data.num_workers=0", "backbone.width=8",
         "data.batch_size=128", "logger=csv", "progress=none", f"hydra.run.dir={run_dir}",
         f"paths.data_dir={tmp_path / 'data'}"],
        tmp_path, guard, log,
    )  # fmt: skip
    assert train.returncode == 0, train.stderr[-3000:]
    test = run_offline(["test", f"ckpt={run_dir / 'checkpoints/best.ckpt'}", f"hydra.run.dir={tmp_path / 'eval'}"],
                       tmp_path, guard, log)  # fmt: skip
    assert test.returncode == 0, test.stderr[-3000:]
    assert (tmp_path / "eval" / "summary.json").is_file()
    assert not log.exists(), log.read_text()
