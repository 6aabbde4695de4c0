"""The shipped configuration, importable as `autotrader_config` so a wheel install finds it (engine/resources.py)."""
