"""Screenshots of `facecluster review`'s pages for the README, taken in headless Chromium.

    .venv/bin/python scripts/review_screenshots.py OUT docs/
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path


def small(path: Path, width: int = 880, colours: int = 192) -> None:
    """A screenshot kept small for the README: scaled down, in a palette of its own colours."""
    from PIL import Image

    image = Image.open(path).convert("RGB")
    image = image.resize((width, int(image.height * width / image.width)), Image.LANCZOS)
    image.quantize(colours, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)


def main(out: str, to: str) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    target = Path(to)
    target.mkdir(parents=True, exist_ok=True)
    server = subprocess.Popen([str(Path(sys.executable).parent / "facecluster"), "review", out, "--no-browser"],
                              stdout=subprocess.PIPE, text=True)
    address = server.stdout.readline().split()[1]
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or shutil.which("chromium-browser")
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1100,800"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    try:
        import pandas as pd

        driver.get(address)
        base = address.split("?")[0].rstrip("/")
        faces = pd.read_parquet(Path(out) / "faces", columns=["photo_id"])
        crowded = faces["photo_id"].value_counts().index[0]  # the photo with most faces
        pages = {"review_people.png": None, "review_person.png": "a.person-link", "review_not_grouped.png": "#nav-not-grouped",
                 "review_photo.png": f"{base}/photo/{crowded}", "review_selection.png": "#nav-not-grouped"}
        for name, click in pages.items():
            if click and click.startswith("http"):
                driver.get(click)
            elif click:
                driver.find_element("css selector", click).click()
            time.sleep(1.5)  # the thumbnails in view
            if name == "review_selection.png":  # three faces picked: a click, then a shift-click two on
                cards = driver.find_elements("css selector", "#faces .face-card > img.face")
                cards[0].click()
                from selenium.webdriver.common.action_chains import ActionChains
                ActionChains(driver).key_down("\ue008").click(cards[2]).key_up("\ue008").perform()
            driver.save_screenshot(str(target / name))
            small(target / name)
            print(target / name)
            driver.find_element("id", "nav-people").click()
    finally:
        driver.quit()
        server.terminate()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
