"""Build of the optional C extension; everything else about the package is in pyproject.toml.

`engine/feed/_fastfeed.c` is the native feed decoder (see docs/feed.md, "Native decoder"). It is optional: on a
machine without a C compiler the install still succeeds and `engine.feed.decoder` uses the pure-Python decoder.
`pip install -e .` builds it in place, next to its source."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("engine.feed._fastfeed", ["engine/feed/_fastfeed.c"], optional=True),
    ],
)
