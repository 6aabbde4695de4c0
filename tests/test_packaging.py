"""The wheel carries its configuration and data: installed in a fresh environment, the command works
from any directory, with no source checkout on the path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture(scope="module")
def installed_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with only the built wheel installed; the dependencies come from this venv's
    site-packages through a plain path entry (its editable-install hook is not processed there)."""
    root = tmp_path_factory.mktemp("wheel")
    built = _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(PROJECT_ROOT),
                  "-w", str(root / "dist")], cwd=root)
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = (root / "dist").glob("autotrader-*.whl")
    venv = root / "venv"
    created = _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=root)
    assert created.returncode == 0, created.stderr
    python = venv / "bin" / "python"
    installed = _run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", str(wheel)],
                     cwd=root)
    assert installed.returncode == 0, installed.stderr[-2000:]
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                     cwd=root).stdout.strip())
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("AUTOTRADER_")}


def test_the_wheel_imports_nothing_from_the_checkout(installed_wheel: Path, tmp_path: Path) -> None:
    probe = _run([str(installed_wheel / "bin" / "python"), "-c",
                  "import engine, engine.resources as r; print(engine.__file__); print(r.config_file('default.toml'))"],
                 cwd=tmp_path, env=_clean_env())
    assert probe.returncode == 0, probe.stderr
    engine_file, config = probe.stdout.split()
    assert str(installed_wheel) in engine_file and str(installed_wheel) in config
    assert str(PROJECT_ROOT) not in probe.stdout


def test_calendar_runs_from_another_directory(installed_wheel: Path, tmp_path: Path) -> None:
    result = _run([str(installed_wheel / "bin" / "autotrader"), "calendar", "2024-06-04", "--json"], cwd=tmp_path,
                  env=_clean_env())
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["date"] == "2024-06-04" and answer["trading_day"] is True


def test_a_short_backtest_runs_on_the_shipped_data(installed_wheel: Path, tmp_path: Path) -> None:
    result = _run([str(installed_wheel / "bin" / "autotrader"), "backtest", "--from", "2024-06-03", "--to",
                   "2024-06-07", "--symbols", "TATASTEEL,INFY,RELIANCE", "--json"], cwd=tmp_path, env=_clean_env())
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout)
    assert summary["trading_days"] == 5 and summary["symbols"] == 3
