"""Kouan's benchmark: ingest, latency, decisions and queries against two baselines."""
