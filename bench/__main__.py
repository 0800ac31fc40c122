"""Run every benchmark module in bench/ (files named *_bench.py), one after the other."""

import importlib
import pkgutil
import sys
import time

import bench


def main(argv: list[str]) -> int:
    names = sorted(m.name for m in pkgutil.iter_modules(bench.__path__)
                   if m.name.endswith("_bench"))
    if any(a in ("-h", "--help") for a in argv):
        print("python -m bench [NAME…]: runs the benchmarks whose module name contains a NAME "
              "(all without one): " + ", ".join(names))
        return 0
    if argv:
        names = [n for n in names if any(a in n for a in argv)]
    # Each module's main reads its own options from sys.argv (otlp_bench took the filter "otlp"
    # for its span count and crashed): run each as if started alone, with its defaults.
    sys.argv = sys.argv[:1]
    for name in names:
        print(f"\n=== bench.{name} ===", flush=True)
        t0 = time.perf_counter()
        importlib.import_module(f"bench.{name}").main()
        print(f"=== bench.{name}: {time.perf_counter() - t0:.0f} s ===", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
