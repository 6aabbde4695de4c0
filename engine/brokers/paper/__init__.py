"""The paper broker: the embedded default, filling against the live or replayed feed."""

from engine.brokers.paper.broker import PaperBroker

__all__ = ["PaperBroker"]
