"""How long each chapter takes to execute in the book build (full mode, this machine).

The book's Sphinx extension writes ``_build/execution_times.json`` after every build. This
module reads it:

- ``python -m benchmarks.bench_book [PATH] [--limit 300]`` prints one line per notebook and
  exits with status 1 when a chapter took longer than the limit or the build was not in full
  mode (``.ci/run`` calls it right after building the book);
- the quality row "book: chapter execution time" reports the same numbers in
  ``benchmarks/results/<device>.md`` (it needs a full build first; quick runs skip it);
- ``python -m benchmarks.bench_book --cells book/rnn.ipynb [--fast]`` executes one notebook
  the way the book build does and prints where its time goes, slowest cells first: measure
  there before cutting anything.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import torch

from benchmarks.harness import Measure, quality_row

ROOT = Path(__file__).resolve().parent.parent
TIMES = ROOT / "_build" / "execution_times.json"
CHAPTERS = ["rnn", "attention", "transformer", "visualization", "detection", "generative"]
LIMIT_SECONDS = 300.0  # per chapter, full mode, 2 CPU cores (DESIGN.md section 10)
BOOK_LIMIT_SECONDS = 1800.0


def load_times(path: Path = TIMES) -> Dict[str, object]:
    """The record the last build wrote (raises FileNotFoundError naming the build to run)."""
    if not path.exists():
        raise FileNotFoundError(
            f"{path} not found: build the book first (jupyter-book build . -W --keep-going)"
        )
    return json.loads(path.read_text(encoding="utf-8"))


def report(record: Dict[str, object], limit: float = LIMIT_SECONDS) -> List[str]:
    """Print the table; return the problems (a chapter over the limit, a missing chapter)."""
    notebooks: Dict[str, Dict[str, object]] = record["notebooks"]  # type: ignore[assignment]
    problems = []
    if record.get("mode") != "full":
        problems.append(f"the build was in {record.get('mode')} mode, not full mode")
    print(f"notebook execution times ({record.get('mode')} mode, {record.get('cpu_count')} CPUs):")
    for docname, data in notebooks.items():
        seconds = float(data["seconds"])
        chapter = docname.split("/")[-1] in CHAPTERS
        flag = " OVER THE LIMIT" if chapter and seconds > limit else ""
        print(f"  {docname:32} {seconds:7.1f} s  ({data['method']}){flag}")
        if flag:
            problems.append(f"{docname} took {seconds:.0f} s (limit {limit:.0f} s)")
    total = sum(float(data["seconds"]) for data in notebooks.values())
    print(f"  {'total':32} {total:7.1f} s")
    if total > BOOK_LIMIT_SECONDS:
        problems.append(f"the whole book took {total:.0f} s (limit {BOOK_LIMIT_SECONDS:.0f} s)")
    for chapter in CHAPTERS:
        if f"book/{chapter}" not in notebooks:
            problems.append(f"book/{chapter} is missing from the record")
    return problems


@quality_row("book", "book: chapter execution time (full-mode build, seconds)")
def chapter_times(device: torch.device, quick: bool) -> List[Measure]:
    if quick:
        return []
    record = load_times()
    if record.get("mode") != "full":
        raise ValueError(f"{TIMES} is from a {record.get('mode')} build; run a full build")
    notebooks = record["notebooks"]
    return [
        Measure(
            f"{chapter} execution time (s)",
            float(notebooks[f"book/{chapter}"]["seconds"]),
            bar=f"<= {LIMIT_SECONDS:.0f}",
            notes=f"build of {record['finished']}, {record['cpu_count']} CPUs",
        )
        for chapter in CHAPTERS
        if f"book/{chapter}" in notebooks
    ]


def cell_times(notebook: Path, fast: bool = False, top: int = 15) -> List[Dict[str, object]]:
    """Execute ``notebook`` as the book build does (full mode unless ``fast``) and return
    ``{"cell", "seconds", "source"}`` for every code cell, slowest first (prints the ``top``)."""
    import os
    import time

    import nbformat
    from nbclient import NotebookClient

    env = {k: v for k, v in os.environ.items() if k != "COURSE_FAST"}
    env["COURSE_BOOK_BUILD"] = "1"
    if fast:
        env["COURSE_FAST"] = "1"
    nb = nbformat.read(notebook, as_version=4)
    client = NotebookClient(nb, timeout=1800, kernel_name="python3",
                            resources={"metadata": {"path": str(notebook.parent)}})  # fmt: skip
    times: List[Dict[str, object]] = []
    original = client.async_execute_cell

    async def timed(cell, index, *args, **kwargs):
        start = time.perf_counter()
        result = await original(cell, index, *args, **kwargs)
        if cell.cell_type == "code":
            first_line = (cell.source.strip().splitlines() or [""])[0][:70]
            seconds = time.perf_counter() - start
            times.append({"cell": index, "seconds": seconds, "source": first_line})
        return result

    client.async_execute_cell = timed
    start = time.perf_counter()
    client.execute(env=env)
    total = time.perf_counter() - start
    times.sort(key=lambda row: -float(row["seconds"]))
    print(f"{notebook}: {total:.1f} s in all ({'fast' if fast else 'full'} mode)")
    for row in times[:top]:
        print(f"  {float(row['seconds']):7.1f} s  cell {row['cell']:>3}  {row['source']}")
    return times


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_book", description=__doc__)
    parser.add_argument("path", nargs="?", type=Path, default=TIMES)
    parser.add_argument("--limit", type=float, default=LIMIT_SECONDS, help="seconds per chapter")
    parser.add_argument("--cells", type=Path, default=None, help="time the cells of a notebook")
    parser.add_argument("--fast", action="store_true", help="with --cells: in fast mode")
    args = parser.parse_args(argv)
    if args.cells is not None:
        cell_times(args.cells, fast=args.fast)
        return 0
    problems = report(load_times(args.path), args.limit)
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
