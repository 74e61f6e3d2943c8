"""Speed benchmarks (separate from tests; results are written to files and committed)."""
