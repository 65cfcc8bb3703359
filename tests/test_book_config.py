"""The book's configuration: language, execution, Colab launch, math, bibliography."""

from pathlib import Path

import yaml
from pybtex.database import parse_file

ROOT = Path(__file__).resolve().parent.parent
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))


def test_language_and_search():
    assert CONFIG["language"] == "zh_CN"
    assert CONFIG["sphinx"]["config"]["html_search_language"] == "zh"


def test_execution_fails_on_errors_and_uses_the_cache():
    execute = CONFIG["execute"]
    assert execute["execute_notebooks"] == "cache"
    assert execute["allow_errors"] is False and execute["timeout"] > 0
    assert CONFIG["sphinx"]["config"]["nb_execution_raise_on_error"] is True


def test_colab_launch_points_at_book_paths_on_main():
    assert CONFIG["repository"]["branch"] == "main"
    assert CONFIG["repository"]["path_to_book"] == ""
    assert CONFIG["launch_buttons"]["colab_url"] == "https://colab.research.google.com"
    html = CONFIG["html"]
    assert (
        html["use_repository_button"] and html["use_issues_button"] and html["use_download_button"]
    )


def test_math_extensions():
    extensions = CONFIG["parse"]["myst_enable_extensions"]
    assert {"dollarmath", "amsmath"} <= set(extensions)


def test_bibliography_parses_with_unique_keys():
    keys = []
    for name in CONFIG["bibtex_bibfiles"]:
        path = ROOT / name
        text = path.read_text(encoding="utf-8")
        keys += [line.split("{", 1)[1].rstrip(",").strip() for line in text.splitlines()
                 if line.startswith("@")]  # fmt: skip
        database = parse_file(str(path))
        for key, entry in database.entries.items():
            assert "title" in entry.fields and "year" in entry.fields, key
    duplicates = {key for key in keys if keys.count(key) > 1}
    assert not duplicates, f"duplicate BibTeX keys: {duplicates}"
    assert "Vaswani2017Attention" in keys


def test_api_appendix_documents_every_module():
    api = (ROOT / "book/appendix/api.md").read_text(encoding="utf-8")
    modules = ["utils", "data", "train", "plotting", "validation", "book", "rnn",
               "attention", "transformer", "visualization", "detection", "generative",
               "checks.core"]  # fmt: skip
    for module in modules:
        assert f".. automodule:: course_lib.{module}" in api
