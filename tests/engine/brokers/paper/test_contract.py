"""The shared broker contract (tests/engine/brokers/contract.py) against this venue."""

from tests.engine.brokers.contract import *  # noqa: F403
