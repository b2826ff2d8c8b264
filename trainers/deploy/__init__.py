"""Export, TFLite conversion, prediction and pruning: the library code behind
``python -m trainers.export``, ``trainers.predict`` and ``trainers.prune``."""
