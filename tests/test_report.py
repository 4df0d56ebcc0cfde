"""The gallery page loads in a real browser (headless Chromium) with every thumbnail decoded."""
import os
import re
import shutil
import subprocess

import pytest

from tests.conftest import ROOT

pytestmark = [pytest.mark.spark, pytest.mark.slow]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (scripts/test.sh installs it when run as root)")
def test_gallery_page_loads_every_thumbnail(sample_run, tmp_path, capsys):
    from facecluster.cli import main

    assert main(["report", str(sample_run)]) == 0
    page = sample_run / "report" / "index.html"
    assert str(page) in capsys.readouterr().out
    text = page.read_text()
    assert "http://" not in text and "https://" not in text  # self-contained
    browser = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([*browser, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120).stdout
    loaded = re.search(r'data-images-loaded="(\d+)/(\d+)"', dom)
    assert loaded, dom[-2000:]
    ok, total = map(int, loaded.groups())
    assert total == text.count("<img ") and total >= 20 and ok == total  # every grouped face, all decoded
    assert "Perhaps the same person" in dom and "People in more than one album" in dom
    shot = tmp_path / "report.png"
    subprocess.run([*browser, f"--screenshot={shot}", "--window-size=1100,1400", page.as_uri()],
                   capture_output=True, timeout=120, check=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000
    if os.environ.get("FACECLUSTER_KEEP_FIGURES"):  # how docs/report.png was made
        shutil.copy(shot, ROOT / "docs" / "report.png")
