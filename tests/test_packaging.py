"""Configs are found after a non-editable install of the wheel, not only from a checkout."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """Build the wheel (no network: no build isolation) and unpack it as pip would install it."""
    pytest.importorskip("hatchling")
    out = tmp_path_factory.mktemp("wheel")
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(out), str(ROOT)],
        capture_output=True, text=True, check=False,
    )
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = out.glob("fermix-*.whl")
    site = out / "site"
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(site)
    return site


def _run(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    # PYTHONPATH puts the unpacked wheel before the editable checkout on sys.path.
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, check=False)


def test_wheel_carries_the_configs(installed):
    assert (installed / "fermix" / "configs" / "train.yaml").is_file()
    assert (installed / "fermix" / "configs" / "method" / "erm.yaml").is_file()


def test_installed_package_composes_its_own_configs(installed, tmp_path):
    code = "import fermix, fermix.cli as c; print(fermix.__file__); print(c.config_dir())"
    where = _run(installed, tmp_path, "-c", code)
    assert where.returncode == 0, where.stderr
    module_file, configs = where.stdout.split()
    assert module_file.startswith(str(installed)) and configs == str(installed / "fermix" / "configs")
    job = _run(installed, tmp_path, "-m", "fermix", "train", "--cfg", "job", "backbone=resnet18")
    assert job.returncode == 0, job.stderr
    assert "name: resnet18" in job.stdout and "name: erm" in job.stdout
