"""Zerodha Kite Connect adapter (`kiteconnect`), and a Kite-compatible loopback server."""
