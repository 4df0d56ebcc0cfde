"""How many clicks and keys it takes to clear the faces not grouped, face by face and a page at a time.

On a copy of a clustered run, `facecluster review` is driven in headless Chromium (selenium and
Debian's chromium-driver), and the first N faces not grouped are cleared twice, counting every
click and key press the browser is sent:
- one at a time: each face's own "not a face" button, and "next" when a page is done;
- a page at a time: `a` (select every face on the page) and `d` ("not a face" for all of them),
  a page after another, the last page's extra faces unselected by a click each.
Between the two, every label written by the first is taken back (undo), so both start from the
same page. The time each takes is printed too (on this machine, not a person's).

    .venv/bin/python benchmarks/review_clicks.py /tmp/rp/celebs17/out --faces 100
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.test_review import labels, next_page, wait_for  # noqa: E402  (the browser test's own waits)


def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or shutil.which("chromium-browser")
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1600"):
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)


def cleared(out: Path) -> int:
    log = labels(out) if (out / "labels.csv").exists() else pd.DataFrame(columns=["face_id"])
    return sum(len(str(f).split()) for f in log["face_id"].dropna())


def one_at_a_time(driver, out: Path, wanted: int) -> int:
    actions = 0
    while cleared(out) < wanted:
        with next_page(driver):
            driver.find_element("css selector", "#faces .face-card button[data-action=not_a_face]").click()
        actions += 1
    return actions


def a_page_at_a_time(driver, out: Path, wanted: int) -> int:
    actions = 0
    while cleared(out) < wanted:
        body = driver.find_element("tag name", "body")
        body.send_keys("a")
        actions += 1
        extra = len(driver.find_elements("css selector", "#faces .face-card.selected")) - (wanted - cleared(out))
        for card in driver.find_elements("css selector", "#faces .face-card.selected > img.face")[::-1][:max(0, extra)]:
            card.click()  # unselect the faces past the N wanted
            actions += 1
        with next_page(driver):
            driver.find_element("tag name", "body").send_keys("d")
        actions += 1
    return actions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", help="a clustered run (copied; the original is not touched)")
    parser.add_argument("--faces", type=int, default=100)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="review-clicks-"))
    out = work / "out"
    shutil.copytree(args.out, out)
    (out / "labels.csv").unlink(missing_ok=True)
    noise = int((pd.read_parquet(out / "assignments", columns=["person_id"])["person_id"] < 0).sum())
    if noise < args.faces:
        raise SystemExit(f"{args.out} has {noise} faces not grouped, fewer than {args.faces}")
    server = subprocess.Popen([str(Path(sys.executable).parent / "facecluster"), "review", str(out), "--no-browser"],
                              stdout=subprocess.PIPE, text=True, env={**os.environ, "XDG_CACHE_HOME": str(work / "cache")})
    address = server.stdout.readline().split()[1]
    driver = browser()
    try:
        driver.get(address.replace("/?", "/not-grouped?"))
        wait_for(lambda: driver.find_element("id", "selection"))
        results = {}
        for name, clear in (("one at a time (each face's own button)", one_at_a_time),
                            ("a page at a time (a, then d)", a_page_at_a_time)):
            began = time.perf_counter()
            actions = clear(driver, out, args.faces)
            results[name] = (actions, time.perf_counter() - began, len(labels(out)))
            while len(labels(out)):  # everything taken back: the next way starts where this one did
                with next_page(driver):
                    driver.find_element("tag name", "body").send_keys("u")
        print(f"{args.out}: {noise} faces not grouped; clearing the first {args.faces} as 'not a face'")
        for name, (actions, seconds, lines) in results.items():
            print(f"  {name:42s} {actions:4d} clicks and keys, {lines:3d} lines in labels.csv, {seconds:5.1f} s")
    finally:
        driver.quit()
        server.terminate()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
