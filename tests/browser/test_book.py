"""`make book` in a real browser, from file://: every page loads offline, its images draw, no error
output is shown, and every link of the index and the exercises page leads somewhere that exists.

The book is built from the notebooks the notebook tests executed earlier in the session
(``tests/fixtures/executed.py``; the marker ``book`` makes this test run last), so no notebook
runs twice. Run on its own, it executes the missing notebooks here with the small parameters of
``test_notebooks.SPECS``. A screenshot of each page goes to the screenshot folder (``book-*.png``).
"""
from __future__ import annotations

import re

import nbformat
import pytest
from executed import EXECUTED
from test_notebooks import SPECS

from qwqlab.book import build_book
from qwqlab.figures import execute_notebook, list_notebooks, page_problems

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.book]
VIEWPORT = {"width": 1280, "height": 900}


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    executed = tmp_path_factory.mktemp("executed")
    for path in list_notebooks():
        nb = EXECUTED.get(path.stem)
        if nb is None:
            nb = execute_notebook(path, SPECS[path.stem].parameters, out_dir=executed / "figures" / path.stem)
        nbformat.write(nb, executed / path.name)
    out = tmp_path_factory.mktemp("book")
    return out, build_book(executed, out, figures=executed / "figures")


def test_the_book_reads_offline_from_file_urls(book, browser, screenshot_dir, record):
    out, pages = book
    assert [p.name for p in pages][:1] == ["index.html"] and len(pages) == len(list_notebooks()) + 3
    page = browser.new_page(viewport=VIEWPORT)
    script_errors, remote = [], []
    page.on("pageerror", lambda e: script_errors.append(str(e)))
    page.on("request", lambda r: remote.append(r.url) if not r.url.startswith(("file:", "data:")) else None)
    try:
        for path in pages:
            page.goto(path.as_uri())
            page.wait_for_load_state("load")
            images = page.evaluate("Array.from(document.images).map(i => [i.complete && i.naturalWidth > 0, i.src.slice(0, 60)])")
            assert all(ok for ok, _ in images), f"{path.name}: images that do not draw: {[s for ok, s in images if not ok]}"
            if path.stem[:2].isdigit():
                assert images, f"{path.name}: a chapter page with no figure"
                text = page.inner_text("body")
                assert "Traceback (most recent call last)" not in text and "Error:" not in text.split("Exercises")[0]
                assert page.locator("[data-mime-type='application/vnd.jupyter.stderr']").count() == 0
                assert page.locator("details.qwqlab-solution").count() >= 2  # folded solutions
                assert not page.locator("details.qwqlab-solution").first.evaluate("d => d.open")
                # formulas are drawn (MathML, no script), not shown as LaTeX source
                assert not re.search(r"\$[^$\n]*\\(?:frac|lambda|bar|sum|text)", text), f"{path.name}: raw LaTeX"
                if path.stem.startswith("03"):
                    drawn = page.eval_on_selector_all("math", "els => els.map(e => e.getBoundingClientRect().width)")
                    assert len(drawn) >= 10 and all(w > 0 for w in drawn), f"{path.name}: formulas {drawn}"
            shot = screenshot_dir / f"book-{path.stem}.png"
            page.screenshot(path=str(shot))
            record(shot)
        # Every link of the index and of the exercises page leads to a page (and anchor) that exists.
        for start in ("index.html", "exercises.html"):
            page.goto((out / start).as_uri())
            links = page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)")
            assert links, start
            for href in links:
                target, _, anchor = href.partition("#")
                page.goto(target)
                page.wait_for_load_state("load")
                assert page.evaluate("document.body !== null && document.body.children.length > 0"), href
                if "/figures/" in target and target.endswith(".html"):  # an interactive figure draws offline
                    page.locator(".js-plotly-plot").first.wait_for(timeout=20_000)
                if anchor:
                    assert page.evaluate("a => !!document.getElementById(decodeURIComponent(a))", anchor), \
                        f"{start}: {href} has no such anchor"
    finally:
        page.close()
    assert script_errors == [], script_errors
    assert remote == [], f"the book fetched from the network: {remote[:5]}"


def test_the_book_is_built_from_clean_pages(book):
    """What the book shows was checked as the notebook tests check it: nothing a class should not see."""
    for stem, nb in EXECUTED.items():
        assert page_problems(nb) == [], stem
