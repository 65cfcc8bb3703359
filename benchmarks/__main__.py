"""Command line: ``python -m benchmarks [--device cpu|cuda] [--quick] [--only NAME [--merge]]``."""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import sys
from pathlib import Path
from typing import Optional, Sequence

import torch

import benchmarks
from benchmarks.harness import dumps, merge_results, render_markdown, run_all

RESULTS = Path(__file__).resolve().parent / "results"


def _load_rows() -> None:
    for module in pkgutil.iter_modules(benchmarks.__path__):
        if module.name.startswith("bench_"):
            importlib.import_module(f"benchmarks.{module.name}")


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or mps (default: cpu)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, to test the harness")
    parser.add_argument("--only", default=None, help="run rows whose name contains this text")
    parser.add_argument(
        "--kind", choices=["speed", "quality", "all"], default="all", help="which tables to run"
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="folder for <device>.md and <device>.json "
        "(default: benchmarks/results for full runs; nothing is written for --quick)",
    )
    parser.add_argument(
        "--merge",
        action="store_true",
        help="with --only: replace only those rows in an existing <device>.json, keep the rest",
    )
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda but CUDA is not available")
    torch.manual_seed(0)
    _load_rows()
    kinds = ("speed", "quality") if args.kind == "all" else (args.kind,)
    results = run_all(device, quick=args.quick, only=args.only, kinds=kinds,
                      log=lambda line: print(line, file=sys.stderr, flush=True))  # fmt: skip
    output = args.output if args.output is not None else (None if args.quick else RESULTS)
    if args.merge:
        if not args.only or output is None:
            parser.error("--merge needs --only and an output folder")
        previous = output / f"{device.type}.json"
        if previous.exists():
            old = json.loads(previous.read_text(encoding="utf-8"))
            results = merge_results(old, results, args.only)
    table = render_markdown(results)
    print(table)
    if output is not None:
        output.mkdir(parents=True, exist_ok=True)
        (output / f"{device.type}.md").write_text(table, encoding="utf-8")
        (output / f"{device.type}.json").write_text(dumps(results), encoding="utf-8")
        print(f"wrote {output / device.type}.md and .json", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
