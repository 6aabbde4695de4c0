"""Build of the optional C extension; everything else about the package is in pyproject.toml.

`engine/feed/_fastfeed.c` is the native feed decoder (see docs/feed.md, "Native decoder"). It is optional: on a
machine without a C compiler the install still succeeds and `engine.feed.decoder` uses the pure-Python decoder.
`pip install -e .` builds it in place, next to its source."""

from setuptools import Extension, find_namespace_packages, setup

# The shipped config/ and data/ folders travel as package data, found by engine/resources.py.
SHIPPED = {"autotrader_config": "config", "autotrader_data": "data"}

setup(
    packages=find_namespace_packages(include=["engine", "engine.*", "flows", "tasks", "cli"]) + list(SHIPPED),
    package_dir=SHIPPED,
    package_data={
        "autotrader_config": ["*.toml"],
        "autotrader_data": ["README.md", "*.parquet", "bars/**/*.parquet", "index/*.parquet"],
    },
    ext_modules=[
        Extension("engine.feed._fastfeed", ["engine/feed/_fastfeed.c"], optional=True),
    ],
)
