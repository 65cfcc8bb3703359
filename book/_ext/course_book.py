"""The book's own Sphinx extension (loaded through ``_config.yml``).

1. **The build decides what a built page needs.** It sets ``COURSE_BOOK_BUILD=1`` in its own
   environment before any notebook runs, so every kernel myst-nb starts inherits it. In such a
   kernel ``course_lib`` draws every knob as a static HTML slider (``figure_slider``), records
   glued numbers (``course_lib.book.glue``), and makes claims about results and exercise
   checks strict (a false claim fails the build in full mode). A reader's shell needs no
   variable: the README's command builds the book to publish. ``COURSE_FAST=1`` remains the
   one switch between fast and full mode.
2. **One execution cache per mode and library version.** jupyter-cache keys a notebook only by
   its code, so a fast build's outputs would otherwise be reused by a full build, and outputs
   of an old ``course_lib`` by a new one. The cache lives in
   ``_build/.jupyter_cache/<mode>-<hash of course_lib>``; older caches of the same mode are
   removed.
3. **Execution times on record.** After a build, ``_build/execution_times.json`` lists each
   notebook's execution time (seconds, as myst-nb measured it; cached notebooks keep the time
   of the run that made the cache), with the mode and the library fingerprint. ``.ci/run``
   prints it and fails a chapter over its time limit; the benchmarks record it as quality
   rows; the appendix page shows myst-nb's own table.
4. Sphinx 7 ends up with two copies of the body-only ``<script>`` snippets that extensions add
   while reading (sphinx-thebe's, sphinx-togglebutton's); the second ``const THEBE_JS_URL``
   then throws "Identifier has already been declared" on every page. Keep the first copy.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict

ROOT = Path(__file__).resolve().parents[2]
BOOK_BUILD_ENV = "COURSE_BOOK_BUILD"  # read by course_lib.book.in_book_build


def _fast_mode() -> bool:
    # The same rule as course_lib.utils.fast_mode (not imported: the build must not need torch).
    return os.environ.get("COURSE_FAST", "").strip().lower() in {"1", "true", "yes"}


def library_fingerprint(root: Path = ROOT) -> str:
    """A short hash of everything under ``course_lib/`` that can change a notebook's outputs."""
    digest = hashlib.sha256()
    package = root / "course_lib"
    for path in sorted(package.rglob("*")):
        if path.is_file() and path.suffix in {".py", ".json", ".yml", ".yaml"}:
            digest.update(path.relative_to(root).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def _cache_path(app: Any, config: Any) -> None:
    if config.nb_execution_cache_path:
        return  # set explicitly: respect it
    mode = "fast" if _fast_mode() else "full"
    base = Path(app.outdir).parent / ".jupyter_cache"
    current = base / f"{mode}-{library_fingerprint()}"
    if base.is_dir():
        for old in base.glob(f"{mode}-*"):
            if old != current and old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
    config.nb_execution_cache_path = str(current)


def _record_execution_times(app: Any, exception: Exception | None) -> None:
    if exception is not None:
        return
    from myst_nb.sphinx_ import NbMetadataCollector

    notebooks = {}
    for docname, data in sorted(NbMetadataCollector.get_doc_data(app.env).items()):
        executed = data.get("exec_data")
        if executed:
            notebooks[docname] = {
                "seconds": round(float(executed["runtime"] or 0.0), 1),
                "method": executed["method"],
                "succeeded": bool(executed["succeeded"]),
            }
    record = {
        "mode": "fast" if _fast_mode() else "full",
        "course_lib": library_fingerprint(),
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "notebooks": notebooks,
    }
    path = Path(app.outdir).parent / "execution_times.json"
    path.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _deduplicate_scripts(
    app: Any, pagename: str, templatename: str, context: Dict[str, Any], doctree: Any
) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    seen = set()
    unique = []
    for script in scripts:
        filename = str(getattr(script, "filename", script) or "")
        key = (filename, tuple(sorted(getattr(script, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    # In place: later handlers (sphinx.ext.mathjax) append to this very list.
    scripts[:] = unique


def setup(app: Any) -> Dict[str, Any]:
    os.environ[BOOK_BUILD_ENV] = "1"
    # Before myst-nb reads its configuration at builder-inited.
    app.connect("config-inited", _cache_path)
    app.connect("build-finished", _record_execution_times)
    # Early priority: html-page-context stops at the first handler that returns a value.
    app.connect("html-page-context", _deduplicate_scripts, priority=100)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
