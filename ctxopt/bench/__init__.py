"""Benchmarks behind `ctxopt bench`: datasets, metrics, and one module per benchmark."""
