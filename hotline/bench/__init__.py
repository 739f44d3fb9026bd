"""Benchmarks behind ``hotline bench ...``: each prints JSON lines, references included."""
