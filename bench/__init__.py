"""Benchmarks (not tests): reproducible, print medians and ratios measured in the same run."""
