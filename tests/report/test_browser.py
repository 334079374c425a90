"""The report as a person sees it: the demo audit's HTML opened in headless Chromium.

Chromium comes from Debian's packages (``make test`` installs it where it is missing); where no
browser can be had the test is skipped and says why."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

CHECK = """
<script>
window.addEventListener("load", () => {
  const images = [...document.images].map(i => ({ok: i.complete && i.naturalWidth > 0 && i.naturalHeight > 0,
                                                 alt: i.alt}));
  const links = [...document.querySelectorAll("nav a")].map(a => a.getAttribute("href"));
  const missing = links.filter(h => !document.getElementById(h.slice(1)));
  const wide = document.documentElement.scrollWidth > document.documentElement.clientWidth + 1;
  const out = document.createElement("pre");
  out.id = "browser-check";
  out.textContent = JSON.stringify({images, links: links.length, missing, wide});
  document.body.appendChild(out);
});
</script>
"""


def _browser() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    pytest.skip("no Chromium on this machine (make test installs Debian's chromium where it can)")


def test_the_demo_report_renders_in_a_browser(demo_run, tmp_path):
    browser = _browser()
    run, _ = demo_run
    page = tmp_path / "report.html"
    page.write_text((run / "report.html").read_text().replace("</body>", CHECK + "</body>"))
    flags = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,900", "--virtual-time-budget=10000",
    ]  # fmt: skip
    dom = subprocess.run(
        [browser, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120
    ).stdout
    found = re.search(r'<pre id="browser-check">(.*?)</pre>', dom, re.S)
    assert found, "the page did not finish loading in the browser"
    check = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert check["images"] and all(i["ok"] for i in check["images"]), [i for i in check["images"] if not i["ok"]]
    assert check["links"] >= 8 and check["missing"] == []  # every section in the contents exists
    assert not check["wide"]  # nothing overflows the page sideways


def test_no_figure_draws_a_censored_median_as_a_number(monkeypatch):
    import math

    from trustlab.robustness import figures

    drawn = {}
    monkeypatch.setattr(figures, "to_png", lambda fig: drawn.setdefault("fig", fig) and b"")
    figures.region_figure(["a", "b"], {"whole": [0.1, math.inf], "object": [math.inf, 0.2]}, eps_max=0.5)
    ax = drawn["fig"].axes[0]
    bars = [p for p in ax.patches if p.get_width() < 1]
    assert max(b.get_height() for b in bars) <= 0.5 and ax.get_ylim()[1] >= 0.5
    censored = [b for b in bars if b.get_height() == 0.5]
    assert len(censored) == 2 and all(b.get_hatch() == "//" for b in censored)
    assert [t.get_text() for t in ax.texts].count(">") == 2
