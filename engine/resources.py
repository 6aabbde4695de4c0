"""Where the shipped configuration and data live, found through the import system so that a wheel
install (config and data as package data) and a source checkout (editable install) both work."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

CONFIG_PACKAGE = "autotrader_config"  # the repository's config/ folder
DATA_PACKAGE = "autotrader_data"  # the repository's data/ folder


def _package_dir(package: str) -> Path:
    return Path(str(resources.files(package)))


def config_file(name: str) -> Path:
    """A file of the shipped configuration, e.g. `config_file("default.toml")`."""
    return _package_dir(CONFIG_PACKAGE) / name


def shipped_data_dir() -> Path:
    """The shipped NSE data (bars, instrument master, market caps)."""
    return _package_dir(DATA_PACKAGE)
