"""The HTML report in a real browser: headless Chromium lays the page out and every
plot must have drawn marks inside a visible SVG.

A small script, added to a copy of the page for the test only, measures each plot's
SVG box and counts its data marks (`class="mark"` with a non-empty bounding box) and
writes the result into the DOM, which `chromium --dump-dom` prints.
"""

from __future__ import annotations

import html
import json
import re
import subprocess
import time
from pathlib import Path

import pytest

from safeship.cli.main import main
from safeship.report.synthetic import generate_history

pytestmark = pytest.mark.integration

_MEASURE = """
<script>
const found = [...document.querySelectorAll("figure.plot")].map((figure) => {
  const svg = figure.querySelector("svg");
  if (!svg) return {plot: figure.dataset.plot, width: 0, height: 0, marks: 0};
  const box = svg.getBoundingClientRect();
  const marks = [...svg.querySelectorAll(".mark")].filter((mark) => {
    const b = mark.getBBox();
    return b.width > 0 || b.height > 0;
  }).length;
  return {plot: figure.dataset.plot, width: box.width, height: box.height, marks};
});
const out = document.createElement("pre");
out.id = "measured";
out.textContent = JSON.stringify(found);
document.body.appendChild(out);
</script>
"""


def test_every_plot_of_the_html_report_draws_in_chromium(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], chromium: str
) -> None:
    url = f"sqlite:///{tmp_path / 'history.db'}"
    generate_history(url, 3000, 120, seed=3, end=time.time())
    page = tmp_path / "report.html"
    code = main(
        ["--store", url, "report", "--since", "90d", "--format", "html", "--output", str(page)]
    )
    assert code == 0, capsys.readouterr().err
    measured_page = tmp_path / "measured.html"
    measured_page.write_text(page.read_text().replace("</body>", _MEASURE + "</body>"))

    result = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--dump-dom",
            measured_page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    match = re.search(r'<pre id="measured">(.*?)</pre>', result.stdout, re.S)
    assert match is not None, result.stderr[-2000:]
    plots = json.loads(html.unescape(match.group(1)))

    names = [plot["plot"] for plot in plots]
    assert names[:3] == ["outcomes", "weekly-frequency", "lead-time"]
    assert names.count("canary") >= 2  # a rollback by analysis and a promotion
    for plot in plots:
        assert plot["width"] > 100, plot
        assert plot["height"] > 100, plot
        assert plot["marks"] >= 2, plot
    by_name = {plot["plot"]: plot for plot in plots}
    assert by_name["outcomes"]["marks"] >= 90  # a bar (or more) for each of 90 days
