"""The raw data and the seed tables the corpora and benchmarks are built from."""
