"""Broker adapters: one folder per venue, all implementing `engine.brokers.base.Broker`."""
