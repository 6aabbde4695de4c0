"""Operator scripts run from the checkout (`make server`)."""
