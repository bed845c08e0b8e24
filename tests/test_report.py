"""`odapi report` and the report training writes: one HTML file, opened in headless Chromium
from disk, shows every section (a screenshot has something drawn in each section's area)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from conftest import run_odapi

SECTIONS = ["run", "data", "curves", "classes", "confusion", "pr", "worst"]
WIDTH = 1280
# Added to a copy of the report: where each section is laid out, and whether images decoded.
MEASURE = """<script>addEventListener("load", () => {
  const boxes = {};
  for (const s of document.querySelectorAll("section")) {
    const r = s.getBoundingClientRect();
    boxes[s.id] = [r.left + scrollX, r.top + scrollY, r.width, r.height];
  }
  const out = document.createElement("pre");
  out.id = "measured";
  out.textContent = JSON.stringify({boxes, height: document.documentElement.scrollHeight,
    images: [...document.images].map(i => i.complete && i.naturalWidth > 0)});
  document.body.append(out);
});</script>"""


def chromium(*args: str) -> subprocess.CompletedProcess:
    browser = next(filter(None, map(shutil.which, ("chromium", "chromium-browser",
                                                   "google-chrome"))), None)
    if browser is None:
        pytest.fail("the report's test opens it in Chromium: apt-get install chromium "
                    "(.ci/run installs it)")
    return subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                           "--hide-scrollbars", "--virtual-time-budget=10000", *args],
                          capture_output=True, text=True, timeout=120, check=True)


def test_the_report_opens_in_chromium_and_shows_every_section(trained_run, tmp_path):
    model_dir = trained_run.model_dir
    # training wrote one at its end, and says where
    assert (model_dir / "report.html").is_file()
    assert re.search(rf"│ report +│ {re.escape(str(model_dir / 'report.html'))} ",
                     trained_run.output), trained_run.output

    code, out, err = run_odapi("report", "--model-dir", model_dir, "--out",
                               tmp_path / "report.html")
    assert code == 0 and out.strip() == f"wrote {tmp_path / 'report.html'}", out + err
    page = (tmp_path / "report.html").read_text()
    assert "<script" not in page and "src=\"data:image/png;base64," in page  # self-contained
    measured_copy = tmp_path / "measured.html"
    measured_copy.write_text(page.replace("</body>", MEASURE + "</body>"))
    dom = chromium(f"--window-size={WIDTH},900", "--dump-dom",
                   measured_copy.as_uri()).stdout
    measured = json.loads(re.search(r'<pre id="measured">(.*?)</pre>', dom).group(1))
    assert list(measured["boxes"]) == SECTIONS
    assert measured["images"] and all(measured["images"]), measured["images"]

    shot = tmp_path / "shot.png"
    chromium(f"--window-size={WIDTH},{measured['height']}", f"--screenshot={shot}",
             (tmp_path / "report.html").as_uri())
    pixels = np.asarray(Image.open(shot).convert("L"))
    assert pixels.shape[0] >= measured["height"] - 1
    for section, (left, top, width, height) in measured["boxes"].items():
        area = pixels[round(top):round(top + height), round(left):round(left + width)]
        drawn = (area < 200).mean()
        assert area.size and drawn > 0.01, f"section {section!r} looks blank ({drawn:.2%})"


def test_a_report_of_a_run_without_an_evaluation_says_how_to_get_one(trained_run, tmp_path):
    copy = tmp_path / "model"
    shutil.copytree(trained_run.model_dir, copy, ignore=shutil.ignore_patterns("eval", "best"))
    code, out, err = run_odapi("report", "--model-dir", copy)
    assert code == 0, out + err
    page = (copy / "report.html").read_text()
    assert page.count("No evaluation yet: evaluate the run") == 4  # classes, figures, worst
    code, out, err = run_odapi("report", "--model-dir", tmp_path / "nothing")
    assert code == 1 and "no odapi run here (manifest.json is missing)" in err


def test_report_help_says_what_it_writes():
    code, out, _ = run_odapi("report", "--help")
    assert code == 0 and "MODEL_DIR/report.html" in out and "no server" in out
