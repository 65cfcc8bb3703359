"""The rendered book in headless Chromium, page by page, the way a reader meets it.

Runs when Playwright's Python client and a system Chromium are installed (``.ci/run``
installs Debian's ``chromium``; nothing is downloaded) and is skipped with the reason
otherwise. It reuses a built book (``COURSE_BOOK_HTML`` or ``_build/html``) or builds one
with the README's command (in fast mode under pytest). For every page of the table of
contents it checks: no JavaScript errors and no failed local requests; MathJax rendered
every formula (MathJax itself is served from the ``django-static-mathjax`` package instead
of its CDN, so the test is offline); executed figures are present; solution toggles start
collapsed and open on click; the Colab link is exactly the notebook's GitHub path; the
download link serves the notebook; every internal link and ``#anchor`` resolves; every knob
of the notebook is a static slider and every control of it changes the picture; no stray
repr, dead-widget placeholder or raw glue role is on the page and every glued number
rendered. The search page must find a Chinese term of each chapter and an English one.
Screenshots go to ``_build/screenshots/``. The two ``test_planted_*`` tests prove that the
checks can fail.
"""

from __future__ import annotations

import functools
import http.server
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import urllib.parse
from pathlib import Path
from typing import Dict, Iterator, List

import pytest
import yaml

from tests.quizbrowser import answer_one_question

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = ROOT / "_build" / "screenshots"
CHROMIUM = (
    os.environ.get("COURSE_CHROMIUM")
    or shutil.which("chromium")
    or shutil.which("chromium-browser")
)
MATHJAX_CDN = "https://cdn.jsdelivr.net/npm/mathjax@3/"
CHAPTERS = ["rnn", "attention", "transformer", "visualization", "detection", "generative"]
#: A Chinese term each chapter must be found by in the search page.
SEARCH_TERMS = {
    "rnn": "循环神经网络",
    "attention": "注意力",
    "transformer": "编码器",
    "visualization": "可视化",
    "detection": "目标检测",
    "generative": "生成模型",
}

pytestmark = pytest.mark.browser

# CI sets COURSE_REQUIRE_BROWSER=1: there a missing browser is a failure, not a skip.
if os.environ.get("COURSE_REQUIRE_BROWSER") == "1":
    import playwright.sync_api as playwright_api

    assert CHROMIUM is not None, "COURSE_REQUIRE_BROWSER=1 but no Chromium was found"
else:
    playwright_api = pytest.importorskip(
        "playwright.sync_api", reason="Playwright's Python client is not installed"
    )
    if CHROMIUM is None:
        pytest.skip(
            "no Chromium found (install Debian's chromium or set COURSE_CHROMIUM)",
            allow_module_level=True,
        )


def _repository() -> Dict[str, str]:
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    owner_repo = config["repository"]["url"].rstrip("/").split("github.com/")[1]
    return {"owner_repo": owner_repo, "branch": config["repository"]["branch"]}


def toc_pages() -> List[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    pages = [toc["root"]]
    for part in toc.get("parts", []):
        pages += [chapter["file"] for chapter in part["chapters"]]
    return pages


def _mathjax_dir() -> Path:
    spec = importlib.util.find_spec("mathjax")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("MathJax files missing: pip install django-static-mathjax")
    return Path(next(iter(spec.submodule_search_locations))) / "static" / "mathjax"


#: The README's build command, run with this Python (``jupyter_book`` has no ``__main__``).
BUILD_COMMAND = [sys.executable, "-c", "from jupyter_book.cli.main import main; main()",
                 "build", str(ROOT), "-W", "--keep-going"]  # fmt: skip


@pytest.fixture(scope="session")
def book_html() -> Path:
    """A built book: COURSE_BOOK_HTML, else _build/html, else build one now.

    The fallback runs the README's build command. Under pytest it inherits ``COURSE_FAST=1``
    from the root conftest, so it is the fast preview of the same book (CI passes the full
    build it made before as ``COURSE_BOOK_HTML``).
    """
    given = os.environ.get("COURSE_BOOK_HTML")
    html = Path(given) if given else ROOT / "_build" / "html"
    if not (html / "index.html").exists():
        subprocess.run(BUILD_COMMAND, cwd=ROOT, check=True)
        html = ROOT / "_build" / "html"
    return html


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def _serve(directory: Path):
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture(scope="session")
def site(book_html: Path) -> Iterator[str]:
    server, url = _serve(book_html)
    yield url
    server.shutdown()


# Module scope: Playwright allows one sync API instance per process, and the quiz test
# (tests/test_quiz.py) starts its own after this module is done.
@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync"],
        )  # fmt: skip
        yield chromium
        chromium.close()


def _route_offline(page: object, external: List[str]) -> None:
    """Serve MathJax from the local package; block (and record) every other outside URL."""
    mathjax = _mathjax_dir()

    def handle(route):
        url = route.request.url
        if url.startswith("http://127.0.0.1"):
            return route.continue_()
        if url.startswith(MATHJAX_CDN):
            local = mathjax / urllib.parse.urlparse(url).path.split("/mathjax@3/", 1)[1]
            if local.is_file():
                content_type = "text/javascript" if local.suffix == ".js" else "font/woff"
                return route.fulfill(path=str(local), content_type=content_type)
        external.append(url)
        return route.abort()

    page.route("**/*", handle)


#: Text that must never reach a reader: reprs of objects and the placeholder of a live widget
#: that has no kernel behind it on a static site.
STRAY_OUTPUT = re.compile(
    r"Loading widget|<function [\w.<>]+ at 0x|object at 0x[0-9a-f]+|interactive\(children="
    r"|<Figure size \d|<static slider figure|<matplotlib\.\w|\{glue(:\w*)?\}"
)
#: Pages that must end with a self-check quiz (the browser answers one question on each).
QUIZ_PAGES: List[str] = ["exercise_demo"]
#: A glue role in Markdown: {glue}`name`, {glue:text}`name:.1%`, ...
GLUE_ROLE = re.compile(r"\{glue(?::\w+)?\}`[^`]+`")


def _notebook_source(docname: str) -> Dict[str, str]:
    """The Markdown and the code of a page's notebook (empty strings for a Markdown page)."""
    path = ROOT / f"{docname}.ipynb"
    if not path.exists():
        return {"markdown": "", "code": ""}
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    joined = {kind: "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == kind)
              for kind in ("markdown", "code")}  # fmt: skip
    return joined


def check_page(browser: object, site: str, docname: str, screenshot: bool = True) -> List[str]:
    """Load one page and return the problems a reader would meet (empty list: all good)."""
    problems: List[str] = []
    external: List[str] = []
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.on("pageerror", lambda error: problems.append(f"JavaScript error: {error}"))
    page.on("console", lambda m: problems.append(f"console error: {m.text}")
            if m.type == "error" and "ERR_FAILED" not in m.text else None)  # fmt: skip
    page.on("requestfailed", lambda r: problems.append(f"failed request: {r.url}")
            if r.url.startswith(site) else None)  # fmt: skip
    page.on("response", lambda r: problems.append(f"HTTP {r.status}: {r.url}")
            if r.status >= 400 and r.url.startswith(site) else None)  # fmt: skip
    _route_offline(page, external)
    page.goto(f"{site}/{docname}.html", wait_until="load")
    page.wait_for_function("() => !window.MathJax || (window.MathJax.startup && "
                           "window.MathJax.startup.promise)", timeout=20000)  # fmt: skip
    page.evaluate("() => window.MathJax && window.MathJax.startup.promise")
    page.wait_for_load_state("networkidle")

    # Math: every math element typeset, and no raw TeX delimiters left in the prose.
    math = page.evaluate(
        """() => {
        const article = document.querySelector('article') || document.body;
        const raw = [];
        const walker = document.createTreeWalker(article, NodeFilter.SHOW_TEXT);
        while (walker.nextNode()) {
          const node = walker.currentNode;
          const skip = 'pre, code, script, style, mjx-container, .highlight';
          if (node.parentElement.closest(skip)) continue;
          const tex = /\\$\\$|\\\\begin\\{|\\\\\\(|\\\\\\[/;
          if (tex.test(node.textContent)) raw.push(node.textContent.trim().slice(0, 60));
        }
        return {math: article.querySelectorAll('.math').length,
                typeset: article.querySelectorAll('mjx-container').length,
                errors: window.MathJax ? Array.from(MathJax.startup.document.math)
                  .filter(m => m.typesetRoot && article.contains(m.typesetRoot) &&
                          m.typesetRoot.querySelector('mjx-merror, mjx-mtext[style*="red"]'))
                  .map(m => m.math) : [], raw};
        }"""
    )
    if math["raw"]:
        problems.append(f"unrendered formula(s): {math['raw'][:3]}")
    if math["errors"]:
        problems.append(f"formula(s) MathJax could not typeset: {math['errors'][:3]}")
    if math["math"] and math["typeset"] < math["math"]:
        problems.append(f"MathJax typeset {math['typeset']} of {math['math']} formulas")

    notebook = (ROOT / f"{docname}.ipynb").exists()
    if notebook:
        figures = page.locator(".cell_output img, .cell_output svg, .course-slider img").count()
        name = docname.split("/")[-1]
        if name in CHAPTERS and figures == 0:
            problems.append("no executed figure in a chapter page")
        expected = (f"https://colab.research.google.com/github/{_repository()['owner_repo']}/blob/"
                    f"{_repository()['branch']}/{docname}.ipynb")  # fmt: skip
        colab = page.eval_on_selector_all(
            ".dropdown-launch-buttons a[href*='colab.research.google.com']",
            "links => links.map(a => a.href)",
        )
        if colab != [expected]:
            problems.append(f"Colab launch link is {colab}, expected [{expected}]")
        downloads = page.eval_on_selector_all(
            "a[href$='.ipynb']:not([href*='colab'])", "links => links.map(a => a.href)"
        )
        source = [link for link in downloads if "_sources" in link]
        if not source:
            problems.append("no download link for the .ipynb source")
        else:
            response = page.request.get(source[0])
            if not response.ok or "cells" not in json.loads(response.text()):
                problems.append(f"download link {source[0]} does not serve the notebook")

    # Solution toggles: collapsed first, open after a click.
    toggles = page.locator(".tag_hide-input details")
    for index in range(toggles.count()):
        toggle = toggles.nth(index)
        if toggle.evaluate("d => d.open"):
            problems.append(f"solution toggle {index} is open by default")
        toggle.locator("summary").click()
        if not toggle.evaluate("d => d.open"):
            problems.append(f"solution toggle {index} did not open on click")

    # Static sliders: one per knob in the notebook, and moving each control changes the picture.
    source = _notebook_source(docname)
    knobs = len(re.findall(r"^[^#\n]*\b(figure_slider|text_explorer)\(", source["code"], re.M))
    knobs -= len(re.findall(r"^\s*def (figure_slider|text_explorer)\(", source["code"], re.M))
    sliders = page.locator(".course-slider")
    if sliders.count() < knobs:
        problems.append(f"{knobs} knob(s) in the notebook but {sliders.count()} static slider(s)")
    for index in range(sliders.count()):
        slider = sliders.nth(index)
        controls = slider.locator("input[type=range]")
        for k in range(controls.count()):
            before = slider.locator("img").get_attribute("src")
            changed = controls.nth(k).evaluate(
                """input => { input.value = input.value === input.max ? input.min : input.max;
                              input.dispatchEvent(new Event('input')); return input.value; }"""
            )
            if slider.locator("img").get_attribute("src") == before:
                problems.append(
                    f"slider {index}, control {k} did not change its picture (value {changed})"
                )

    # Nothing a reader should not see: stray reprs, dead-widget placeholders, raw glue roles.
    # (Code in the prose, e.g. a docstring that shows how to write a glue role, is not output.)
    text = page.evaluate(
        """() => { const article = (document.querySelector('article') || document.body)
                     .cloneNode(true);
                   article.querySelectorAll('.cell_input, .highlight, pre, code')
                     .forEach(e => { if (!e.closest('.cell_output')) e.remove(); });
                   return article.textContent; }"""
    )
    problems += [f"stray output on the page: {match.group(0)!r}"
                 for match in STRAY_OUTPUT.finditer(text)]  # fmt: skip
    if page.locator("article .jupyter-widgets, script[type*='jupyter.widget-view']").count():
        problems.append("a live-widget view (needs a kernel) is on the static page")
    # The self-check quiz answers: one question answered wrongly (its explanation shows), then
    # rightly. Every chapter ends with a quiz.
    name = docname.split("/")[-1]
    if "show_quiz(" in source["code"] or name in QUIZ_PAGES:
        problems += answer_one_question(page)

    # Every glued number rendered: as many pasted values as glue roles in the Markdown.
    roles = len(GLUE_ROLE.findall(source["markdown"]))
    pasted = page.locator("article .pasted-text, article .pasted-inline").count()
    if pasted < roles:
        problems.append(f"{roles} glue role(s) in the notebook but {pasted} rendered value(s)")

    problems += [f"external request (needs the network): {url}" for url in external]
    if screenshot:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(
            path=str(SCREENSHOTS / f"{docname.replace('/', '_')}.png"),
            full_page=True,
            timeout=120000,
        )
    page.close()
    return problems


@functools.cache
def _page_ids(path: Path, mtime: float) -> frozenset:
    """The element ids of one HTML page (parsed once per version of the file)."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")
    return frozenset(element["id"] for element in soup.find_all(id=True))


def check_links(book_html: Path, docname: str) -> List[str]:
    """Every internal link of the page exists, and so does every #anchor it points at."""
    from bs4 import BeautifulSoup

    page_path = book_html / f"{docname}.html"
    soup = BeautifulSoup(page_path.read_text(encoding="utf-8"), "html.parser")
    problems = []
    for anchor in soup.select("a[href]"):
        href = anchor["href"]
        parsed = urllib.parse.urlparse(href)
        if parsed.scheme or href.startswith(("mailto:", "javascript:")):
            continue
        target = (
            (page_path.parent / urllib.parse.unquote(parsed.path)).resolve()
            if parsed.path
            else page_path
        )
        if target.is_dir():
            target = target / "index.html"
        if not target.exists():
            problems.append(f"broken link: {href}")
            continue
        if parsed.fragment and target.suffix == ".html":
            ids = _page_ids(target, target.stat().st_mtime)
            if urllib.parse.unquote(parsed.fragment) not in ids:
                problems.append(f"missing anchor: {href}")
    # Each chapter has its own bibliography: a citation must resolve on the same page.
    for anchor in soup.select("span.bibtex-citation a[href]"):
        if not anchor["href"].startswith("#"):
            problems.append(f"citation points off the page: {anchor['href']}")
    return problems


@pytest.mark.parametrize("docname", toc_pages())
def test_page_renders_for_a_reader(browser, site, book_html, docname):
    problems = check_page(browser, site, docname) + check_links(book_html, docname)
    assert not problems, "\n".join(problems)


def _search(browser: object, site: str, term: str) -> List[str]:
    page = browser.new_page()
    _route_offline(page, [])
    page.goto(f"{site}/search.html?q={urllib.parse.quote(term)}", wait_until="load")
    page.wait_for_function(
        "() => document.querySelector('#search-results') && "
        "document.querySelector('#search-results').innerText.length > 0", timeout=30000
    )  # fmt: skip
    page.wait_for_timeout(500)
    links = page.eval_on_selector_all("#search-results a", "links => links.map(a => a.href)")
    page.close()
    return links


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_search_finds_each_chapter_by_a_chinese_term(browser, site, chapter):
    links = _search(browser, site, SEARCH_TERMS[chapter])
    assert any(f"book/{chapter}.html" in link for link in links), links


def test_search_finds_an_english_term(browser, site):
    assert any("book/rnn.html" in link for link in _search(browser, site, "LSTM"))


def test_planted_defects_are_caught(browser, book_html, tmp_path):
    """A broken link, a raw formula, a wrong Colab URL and an off-page citation must be reported."""
    copy = tmp_path / "html"
    shutil.copytree(book_html, copy)
    page = copy / "book" / "rnn.html"
    text = page.read_text(encoding="utf-8")
    expected = f"blob/{_repository()['branch']}/book/rnn.ipynb"
    assert expected in text
    text = text.replace(expected, f"blob/{_repository()['branch']}/rnn.ipynb")
    text = text.replace("</article>", '<p>$$x^2 + 1$$</p>'
                        '<span class="math">\\(\\nosuchmacro x\\)</span>'
                        '<span class="math">\\(x^{2\\)</span>'
                        '<a href="no-such-page.html">x</a>'
                        '<a href="intro.html#no-such-anchor">y</a><span class="bibtex-citation">'
                        '<a href="attention.html#id1">z</a></span>'
                        '<p>&lt;function draw at 0x7f3a2c1d9e40&gt; Loading widget...</p>'
                        '<p>{glue:text}`lm_bpc:.2f`</p></article>', 1)  # fmt: skip
    page.write_text(text, encoding="utf-8")
    server, url = _serve(copy)
    try:
        problems = check_page(browser, url, "book/rnn", screenshot=False)
    finally:
        server.shutdown()
    problems += check_links(copy, "book/rnn")
    report = "\n".join(problems)
    assert "unrendered formula(s): ['$$x^2 + 1$$', '\\\\(x^{2\\\\)']" in report, report
    assert "MathJax could not typeset: ['\\\\nosuchmacro x']" in report, report
    assert "Colab launch link is ['https://colab.research.google.com/github/" in report, report
    assert "broken link: no-such-page.html" in report, report
    assert "missing anchor: intro.html#no-such-anchor" in report, report
    assert "citation points off the page: attention.html#id1" in report, report
    assert "stray output on the page: '<function draw at 0x" in report, report
    assert "stray output on the page: 'Loading widget'" in report, report
    assert "stray output on the page: '{glue:text}'" in report, report


def test_planted_dead_knobs_and_missing_glue_are_caught(browser, book_html, tmp_path):
    """A slider whose frames are all the same, a knob drawn as a live widget, a lost glue value."""
    copy = tmp_path / "html"
    shutil.copytree(book_html, copy)
    docname = next(
        (f"book/{name}" for name in CHAPTERS if (copy / "book" / f"{name}.html").exists()
         and "course-slider" in (copy / "book" / f"{name}.html").read_text(encoding="utf-8")),
        None,
    )  # fmt: skip
    assert docname is not None, "no chapter page with a static slider to plant defects in"
    page = copy / f"{docname}.html"
    text = page.read_text(encoding="utf-8")
    # Every frame of every slider replaced by one picture: moving a slider changes nothing.
    text = re.sub(r'("\d+(?:_\d+)*": )"[A-Za-z0-9+/=]+"', r'\1"AAAA"', text)
    frame = r'(class="course-slider-frame"[^>]*src=")[^"]+"'
    text = re.sub(frame, r'\1data:image/png;base64,AAAA"', text)
    # One slider gone (as if it had been drawn as a live widget), one glued value gone.
    text = text.replace('<div class="course-slider"', '<div class="was-a-slider"', 1)
    text = text.replace('class="pasted-text"', 'class="was-pasted"', 1)
    page.write_text(text, encoding="utf-8")
    server, url = _serve(copy)
    try:
        problems = check_page(browser, url, docname, screenshot=False)
    finally:
        server.shutdown()
    report = "\n".join(problems)
    assert "did not change its picture" in report, report
    assert re.search(r"\d+ knob\(s\) in the notebook but \d+ static slider\(s\)", report), report
    if "{glue" in _notebook_source(docname)["markdown"]:
        assert "rendered value(s)" in report, report
