"""The shipped NSE data, importable as `autotrader_data` so that a wheel install finds it
(engine/resources.py). Provenance in README.md."""
