"""Example strategies shipped with autotrader: demonstrations of the interface, not advice."""
