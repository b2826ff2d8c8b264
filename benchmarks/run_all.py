"""Run every benchmark module in this package (each has a ``main(argv) -> int``), in order.

    python -m benchmarks.run_all            # all, default settings
    python -m benchmarks.run_all --quick    # each module's QUICK_ARGS: seconds, for CI
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import benchmarks

SKIP = {"run_all"}


def benchmark_modules() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(benchmarks.__path__) if m.name not in SKIP)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    quick = "--quick" in argv
    status = 0
    for name in benchmark_modules():
        print(f"== benchmarks.{name}", flush=True)
        module = importlib.import_module(f"benchmarks.{name}")
        status |= module.main(list(getattr(module, "QUICK_ARGS", [])) if quick else [])
    return status


if __name__ == "__main__":
    sys.exit(main())
