"""Benchmarks: ``python -m benchmarks.run_all`` runs every one (``make bench``)."""
