"""report.html in a real browser: headless Chromium (Debian's `chromium`; `make test` installs it where missing)
loads the page from disk with networking off, 1280 px wide; no console error, every table and image rendered,
no sideways scrolling, and a screenshot of the whole page kept under the test's temporary folder."""
from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from browser import CHROMIUM, Browser
from report_fixtures import RESNET, metrics, raced_experiment, write_experiment

from tune_digits.report import run_report

MEASURE = """JSON.stringify({
  tables: [...document.querySelectorAll('table')].map(t => [t.getBoundingClientRect().width, t.rows.length]),
  images: [...document.images].map(i => [i.complete, i.naturalWidth, i.getBoundingClientRect().width,
                                         i.getBoundingClientRect().height]),
  headings: [...document.querySelectorAll('h2')].map(h => h.textContent),
  scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth})"""


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    """The report of a small synthetic study with every table: Tables I–IV, the setups table, a raced screen's
    rounds, Figure 1."""
    root = tmp_path_factory.mktemp("html") / "outputs"
    write_experiment(root, "resnet", "screen", RESNET, ["batch_norm", "channels"])
    write_experiment(root, "linear", "screen", [({"dropout": d}, metrics(4.0 + d, 0.5)) for d in (False, True)],
                     ["dropout"])
    write_experiment(root, "lenet", "screen", [({"aux_loss": a}, metrics(2.5 + a, 0.5)) for a in (True, False)],
                     ["aux_loss"])
    write_experiment(root, "authors_resnet", "final", [({}, metrics(2.0, 0.5))], [])
    raced_experiment(root, "raced")
    out = io.StringIO()
    run_report(root, out=out)
    path = root / "report" / "report.html"
    assert out.getvalue().splitlines()[-1] == f"HTML report: {path}"  # every report ends with the page's path
    return path


def test_page_is_self_contained(page: Path) -> None:
    text = page.read_text()
    assert not re.search(r"""(src|href)\s*=\s*['"](?!data:|#)""", text), "every image and style inline"
    assert "http://" not in text and "https://" not in text and text.count("data:image/png;base64,") >= 3


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium (make test installs Debian's chromium)")
def test_page_renders_in_headless_chromium_offline(page: Path, tmp_path: Path) -> None:
    with Browser(tmp_path / "profile") as browser:
        browser.open(page, width=1280)
        measured = browser.evaluate(MEASURE)
        browser.screenshot(tmp_path / "report.png")
        errors = browser.errors()
    import json

    m = json.loads(measured)
    assert errors == []
    titles = " | ".join(m["headings"])
    for part in ("Findings", "Table II", "Table III", "Table IV", "Setups side by side", "Table I — resnet/screen",
                 "The race — linear/raced", "Figure 1", "Each option's effect", "The races"):
        assert part in titles, (part, titles)
    assert len(m["tables"]) >= 7 and all(w > 0 and rows > 1 for w, rows in m["tables"])
    # Figure 1, one effects plot per screen (resnet, linear, lenet, the raced linear one) and the race's rounds,
    # each decoded and laid out.
    assert len(m["images"]) == 6 and all(done and nat > 0 and w > 0 and h > 0 for done, nat, w, h in m["images"])
    assert m["innerWidth"] == 1280 and m["scrollWidth"] <= m["innerWidth"], "no sideways scrolling at 1280 px"
    assert (tmp_path / "report.png").read_bytes()[:4] == b"\x89PNG"
