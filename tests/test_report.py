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
    import pandas as pd

    photos = pd.read_parquet(sample_run / "photos", columns=["photo_id", "taken_at", "taken_at_source"])
    dated = photos[photos["taken_at_source"] == "exif"]
    assert len(dated) >= 2 and f"{len(dated)} photos dated by their EXIF" in text
    faces = pd.read_parquet(sample_run / "faces", columns=["face_id", "photo_id"]).merge(
        pd.read_parquet(sample_run / "assignments", columns=["face_id", "person_id"]), on="face_id")
    for person, theirs in faces[faces["person_id"] >= 0].groupby("person_id"):
        years = pd.to_datetime(dated[dated["photo_id"].isin(theirs["photo_id"])]["taken_at"]).dt.year.value_counts()
        block = text[text.index(f"id='person-{person}'"):].split("</div></div>")[0]
        for year, count in years.items():
            assert f"{year} ({count})" in block, (person, block[:300])
    shot = tmp_path / "report.png"
    subprocess.run([*browser, f"--screenshot={shot}", "--window-size=1100,1400", page.as_uri()],
                   capture_output=True, timeout=120, check=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000
    if os.environ.get("FACECLUSTER_KEEP_FIGURES"):  # how docs/report.png was made
        shutil.copy(shot, ROOT / "docs" / "report.png")
