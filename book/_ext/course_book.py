"""Small Sphinx fixes for the rendered book (loaded through ``_config.yml``).

Sphinx 7 ends up with two copies of the body-only ``<script>`` snippets that extensions add
while reading (sphinx-thebe's, sphinx-togglebutton's): one with filename ``None``, one with
``""``. The second ``const THEBE_JS_URL`` then throws "Identifier has already been
declared" on every page. Keep the first copy of each script.
"""

from __future__ import annotations

from typing import Any, Dict


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
    # Early priority: html-page-context stops at the first handler that returns a value.
    app.connect("html-page-context", _deduplicate_scripts, priority=100)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
