"""Benchmarks and harnesses (not run by the test suite)."""
