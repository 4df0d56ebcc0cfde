"""`facecluster review`: the page served by the command line, driven by real clicks in headless
Chromium (selenium with Debian's chromium-driver), then `facecluster cluster`, and the tables
checked against every action: rename, merge, move out, assign, hide, undo."""
import os
import shutil
import subprocess
import sys
import time
import urllib.error
from contextlib import contextmanager
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import ROOT

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
pytestmark = [pytest.mark.spark, pytest.mark.slow]
needs_browser = pytest.mark.skipif(CHROMIUM is None or DRIVER is None,
                                   reason="needs Debian's chromium and chromium-driver (scripts/test.sh installs "
                                          "them when run as root)")


def facecluster(*words) -> int:
    from facecluster.cli import main

    return main([str(w) for w in words])


@pytest.fixture()
def served(sample_run, tmp_path):
    """A copy of the sample run, and `facecluster review` serving it: (out, address)."""
    out = tmp_path / "out"
    shutil.copytree(sample_run, out)
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    server = subprocess.Popen([str(Path(sys.executable).parent / "facecluster"), "review", str(out), "--no-browser"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    line = server.stdout.readline()
    assert line.startswith("review: http://127.0.0.1:"), line + server.stderr.read()
    try:
        yield out, line.split()[1]
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture()
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1600"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.implicitly_wait(0)  # pages are whole when next_page returns: an element is there or not
    yield driver
    driver.quit()


def person_of(out: Path) -> pd.Series:
    return pd.read_parquet(out / "assignments", columns=["face_id", "person_id"]).set_index("face_id")["person_id"]


def labels(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "labels.csv", dtype=str)


def open_person(driver, person: int):
    with next_page(driver):
        driver.find_element("id", "nav-people").click()
    with next_page(driver):
        driver.find_element("css selector", f"a.person-link[data-person-id='{person}']").click()
    wait_for(lambda: driver.find_element("id", "person-title"))


# A safety net for a page that never comes, not a pace: every wait below ends on the page's state.
PATIENCE = 120


def wait_for(check, seconds: float = PATIENCE):
    deadline = time.monotonic() + seconds
    while True:
        try:
            result = check()
            if result:
                return result
        except Exception:  # the page is reloading: elements come and go
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise AssertionError("the page never showed it")
        time.sleep(0.05)


@contextmanager
def next_page(driver):
    """The block clicks something that loads a page (a link, or an action whose answer reloads):
    wait until the page the click was made on is gone and the new one is whole, so that no
    element is looked up on the old page while the new one comes (a fast machine finds the old
    page's elements, a slow one the new page's)."""
    old = driver.find_element("tag name", "html")
    yield

    def gone():
        try:
            old.tag_name  # noqa: B018 - raises once the page it belongs to is gone
            return False
        except Exception:  # StaleElementReferenceException: a new page
            return True

    wait_for(gone)
    wait_for(lambda: driver.execute_script("return document.readyState") == "complete")


def faces_on_page(driver) -> list[str]:
    return [i.get_attribute("data-face-id") for i in driver.find_elements("css selector", "#faces img.face")]


@needs_browser
def test_review_by_clicks_then_cluster_obeys_every_action(served, browser):
    out, address = served
    before = person_of(out)
    sizes = before[before >= 0].value_counts()
    alice, other, third = (int(p) for p in sizes.index[:3])
    faces_of = {p: set(before.index[before == p]) for p in (alice, other, third)}

    browser.get(address)
    wait_for(lambda: browser.execute_script("return document.readyState") == "complete")
    assert browser.find_element("id", "nav-people").text == f"People ({len(sizes)})"
    shown = [int(a.get_attribute("data-person-id")) for a in browser.find_elements("css selector", "a.person-link")]
    assert shown[:3] == [alice, other, third], "people largest first"
    wait_for(lambda: browser.execute_script(
        "const seen = [...document.images].filter(i => i.getBoundingClientRect().top < innerHeight);"
        "return seen.length > 0 && seen.every(i => i.complete && i.naturalWidth > 0);"))  # every thumbnail in view

    # Rename.
    open_person(browser, alice)
    field = browser.find_element("css selector", "#rename input[name=name]")
    field.clear()
    field.send_keys("Alice Example")
    with next_page(browser):
        browser.find_element("css selector", "#rename button").click()
    assert browser.find_element("id", "person-title").text == "Alice Example"

    # Merge, with the other person found by number in the merge search.
    browser.find_element("css selector", "#merge input[name=merge_q]").send_keys(f"#{other}")
    with next_page(browser):
        browser.find_element("id", "merge-search").click()
    with next_page(browser):
        browser.find_element("css selector", f".merge-candidate[data-person-id='{other}'] button").click()
    assert len(faces_on_page(browser)) == len(faces_of[alice]) + len(faces_of[other])

    # Move a face out.
    button = browser.find_element("css selector", "#faces button[data-action=move_out]")
    moved = button.get_attribute("data-face_id")
    with next_page(browser):
        button.click()
    assert moved not in faces_on_page(browser) and len(faces_on_page(browser)) > 0

    # Assign a face that was not grouped to the third person, by number.
    with next_page(browser):
        browser.find_element("id", "nav-not-grouped").click()
    card = browser.find_element("css selector", "#faces .face-card")
    assigned = card.get_attribute("data-face-id")
    card.find_element("css selector", "form.assign-other input[name=person_id]").send_keys(str(third))
    with next_page(browser):
        card.find_element("css selector", "form.assign-other button").click()
    assert assigned not in [c.get_attribute("data-face-id") for c in browser.find_elements("css selector", "#faces .face-card")]

    # A label naming a person who does not exist is refused when written, with the reason (no new page).
    card = browser.find_element("css selector", "#faces .face-card")
    card.find_element("css selector", "form.assign-other input[name=person_id]").send_keys("99999")
    card.find_element("css selector", "form.assign-other button").click()
    message = wait_for(lambda: browser.find_element("id", "message").text)
    assert "no person 99999" in message

    # Hide the third person, then undo it.
    written = len(labels(out))
    open_person(browser, third)
    with next_page(browser):
        browser.find_element("id", "hide").click()
    assert not browser.find_elements("css selector", f"a.person-link[data-person-id='{third}']")
    assert len(labels(out)) == written + 1 and labels(out)["action"].iloc[-1] == "hide"
    with next_page(browser):
        browser.find_element("id", "undo").click()
    assert browser.find_elements("css selector", f"a.person-link[data-person-id='{third}']")
    assert list(labels(out)["action"]) == ["name", "merge", "move_out", "assign"]

    assert facecluster("cluster", "--out", out, "--set", "spark.master=local[2]") == 0
    after = person_of(out)
    people = pd.read_parquet(out / "people")
    named = people[people["name"] == "Alice Example"]
    assert len(named) == 1, "renamed"
    alice_now = int(named["person_id"].iloc[0])
    kept = (faces_of[alice] | faces_of[other]) - {moved}
    assert set(after.index[after == alice_now]) >= kept, "merged: both people's faces are one person"
    assert after[moved] != alice_now, "the face moved out is not put back"
    assert after[assigned] == after[next(iter(faces_of[third]))] >= 0, "assigned to the third person"
    assert not people["hidden"].any(), "the hide was undone"


@needs_browser
def test_review_needs_its_token(served):
    out, address = served
    bare = address.split("?")[0]
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(bare)
    assert refused.value.code == 403
    post = urllib.request.Request(bare + "api/label", data=b'{"action": "hide", "person_id": 0}', method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(post)
    assert refused.value.code == 403
    assert not (out / "labels.csv").exists(), "nothing written without the token"
    with urllib.request.urlopen(address) as page:
        assert b"People, most faces first" in page.read()


def test_review_on_another_address_needs_a_token(sample_run):
    from facecluster.core.errors import UserError
    from facecluster.viewing.review_server import start_review

    with pytest.raises(UserError, match="--token"):
        start_review(str(sample_run), host="0.0.0.0")


def test_a_hidden_person_is_kept_but_never_shown_or_exported(sample_run, tmp_path):
    from facecluster.viewing.runs import load_run

    out = tmp_path / "out"
    shutil.copytree(sample_run, out)
    before = person_of(out)
    hidden = int(before[before >= 0].value_counts().index[0])
    faces = set(before.index[before == hidden])
    assert facecluster("label", "--out", out, "hide", hidden) == 0
    assert facecluster("label", "--out", out, "name", hidden, "Not Shown") == 0
    assert facecluster("cluster", "--out", out, "--set", "spark.master=local[2]") == 0
    people = pd.read_parquet(out / "people")
    row = people[people["hidden"]]
    assert len(row) == 1 and row["name"].iloc[0] == "Not Shown", "kept, one person, marked hidden"
    assert set(person_of(out).index[person_of(out) == int(row["person_id"].iloc[0])]) == faces
    run = load_run(out)
    assert not set(run["faces"]["face_id"]) & faces and int(row["person_id"].iloc[0]) not in set(run["people"]["person_id"])
    assert facecluster("export", out, "--to", tmp_path / "export") == 0
    exported = pd.read_csv(tmp_path / "export" / "faces.csv")
    assert "Not Shown" not in set(exported["name"].dropna())


@pytest.fixture()
def in_process(sample_run, tmp_path):
    """`review` served from this process on a copy of the sample run: (out, address, port)."""
    import threading

    from facecluster.viewing.review_server import start_review

    out = tmp_path / "out"
    shutil.copytree(sample_run, out)
    server, address = start_review(str(out), cache=tmp_path / "cache")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield out, address, server.server_address[1]
    server.shutdown()
    server.server_close()


def _post(url, body: bytes, headers: dict):
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as refused:
        return refused.code, refused.read()


def test_an_action_needs_the_token_in_its_header_not_the_cookie_alone(in_process):
    """Another page on 127.0.0.1 (a notebook server, another tool) is the same site to the browser:
    a text/plain form it posts carries the cookie, never the header, and is refused."""
    out, address, port = in_process
    bare, token = address.split("?token=")
    with urllib.request.urlopen(address) as page:
        cookie = page.headers["Set-Cookie"].split(";")[0]
    assert cookie.startswith(f"facecluster_review_{port}="), "one cookie per port"
    form = b'{"action": "name", "person_id": 0, "name": "Mallory"}'
    assert _post(bare + "api/label", form, {"Cookie": cookie, "Content-Type": "text/plain"})[0] == 403
    assert _post(bare + "api/label", form, {"Cookie": cookie, "Content-Type": "application/json"})[0] == 403
    assert not (out / "labels.csv").exists(), "nothing written"
    status, _ = _post(bare + "api/label", form, {"X-Review-Token": token, "Content-Type": "application/json"})
    assert status == 200 and "Mallory" in (out / "labels.csv").read_text()


@pytest.mark.parametrize("body, headers, code", [
    (b"[1, 2]", {}, 400),
    (b'{"action": "name", "person_id": [0], "name": "X"}', {}, 400),
    (b'{"action": "name", "person_id": 0, "name": 5}', {}, 200),
    (b"not json", {}, 400),
    (b"{}", {"Content-Length": "-1"}, 400),
    (b"{}", {"Content-Length": str(10 ** 9)}, 400),
])
def test_a_malformed_action_is_told_as_such_never_a_server_error(in_process, body, headers, code):
    out, address, _ = in_process
    bare, token = address.split("?token=")
    status, answer = _post(bare + "api/label", body, {"X-Review-Token": token, "Content-Type": "application/json",
                                                      **headers})
    assert status == code, answer
    assert b"Traceback" not in answer and b"error: " not in answer


def test_a_token_given_by_hand_must_be_long(sample_run):
    from facecluster.core.errors import UserError
    from facecluster.viewing.review_server import start_review

    with pytest.raises(UserError, match="at least 16 characters"):
        start_review(str(sample_run), host="0.0.0.0", token="a")


def test_a_persons_albums_on_the_page_are_those_of_person_albums(sample_run, tmp_path):
    """The sample archive holds one photo copied into two albums: it counts in both, as in the
    person_albums table."""
    from facecluster.viewing.review import FaceStore, ReviewState

    state = ReviewState(str(sample_run), FaceStore(str(sample_run), tmp_path / "cache"))
    table = pd.read_parquet(sample_run / "person_albums")
    photos = pd.read_parquet(sample_run / "photos", columns=["albums"])
    assert (photos["albums"].map(len) > 1).any(), "the check needs a photo in two albums"
    for person, rows in table.groupby("person_id"):
        assert sorted(state.albums_of(int(person))) == sorted(zip(rows["album"], rows["n_faces"].astype(int)))


def test_a_merge_is_offered_unasked_only_within_the_suggestion_distance(in_process):
    """The nearest people are shown on a person's page, but a merge button only for those the
    report and the notebook would suggest (on the sample run: none; the nearest lie 0.4 and more
    apart, plainly other people)."""
    import re

    out, address, _ = in_process
    bare, token = address.split("?token=")
    sizes = person_of(out)[person_of(out) >= 0].value_counts()
    with urllib.request.urlopen(f"{bare}person/{int(sizes.index[0])}?token={token}") as page:
        html = page.read().decode()
    nearest = re.findall(r"distance (\d\.\d\d): (perhaps the same person|most likely someone else)", html)
    assert nearest, "the nearest people are shown with their distance"
    limit = float(re.search(r"offered only within (\d\.\d\d)", html).group(1))
    for distance, words in nearest:
        assert (float(distance) <= limit) == (words == "perhaps the same person")
    merges = html.count("data-action='merge'")
    assert merges == sum(words == "perhaps the same person" for _, words in nearest)


def selected_count(driver) -> int:
    return int(driver.find_element("css selector", "#selection .count").text)


@needs_browser
def test_many_faces_at_once_by_clicks_and_keys_then_cluster_obeys(served, browser):
    """Select faces (a click, a shift-click range, the keyboard, select all), act on them in one
    action: one line of the label log each, one undo taking the whole action back; then
    `facecluster cluster` and the tables checked."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    out, address = served
    before = person_of(out)
    sizes = before[before >= 0].value_counts()
    assert sizes.iloc[0] >= 3 and (before == -1).sum() >= 2, "the sample run has a person of 3+ faces and 2+ not grouped"
    first, second = (int(p) for p in sizes.index[:2])
    browser.get(address)
    wait_for(lambda: browser.execute_script("return document.readyState") == "complete")

    # A click, then a shift-click two faces on: three selected, moved out in one action.
    open_person(browser, first)
    faces = browser.find_elements("css selector", "#faces .face-card > img.face")
    faces[0].click()
    ActionChains(browser).key_down(Keys.SHIFT).click(faces[2]).key_up(Keys.SHIFT).perform()
    assert selected_count(browser) == 3
    moved = [c.get_attribute("data-face-id") for c in browser.find_elements("css selector", "#faces .face-card.selected")]
    with next_page(browser):
        browser.find_element("id", "batch-move-out").click()
    assert not set(moved) & set(faces_on_page(browser))
    log = labels(out)
    assert len(log) == 1 and log["action"].iloc[0] == "move_out" and set(log["face_id"].iloc[0].split()) == set(moved)

    # The keyboard: u takes the whole action back.
    with next_page(browser):
        browser.find_element("tag name", "body").send_keys("u")
    assert set(moved) <= set(faces_on_page(browser)) and len(labels(out)) == 0

    # j, x, j, x selects two faces; m moves both out.
    body = browser.find_element("tag name", "body")
    body.send_keys("j", "x", "j", "x")
    assert selected_count(browser) == 2
    moved = [c.get_attribute("data-face-id") for c in browser.find_elements("css selector", "#faces .face-card.selected")]
    with next_page(browser):
        browser.find_element("tag name", "body").send_keys("m")
    assert not set(moved) & set(faces_on_page(browser))

    # Every face not grouped: a selects all on the page, one assign to the second person.
    with next_page(browser):
        browser.find_element("id", "nav-not-grouped").click()
    browser.find_element("tag name", "body").send_keys("a")
    assigned = [c.get_attribute("data-face-id") for c in browser.find_elements("css selector", "#faces .face-card.selected")]
    assert len(assigned) == len(browser.find_elements("css selector", "#faces .face-card")) >= 2
    browser.find_element("css selector", "#batch-assign input[name=person_id]").send_keys(str(second))
    with next_page(browser):
        browser.find_element("css selector", "#batch-assign button").click()
    log = labels(out)
    assert list(log["action"]) == ["move_out", "assign"], "one line per action"
    assert set(log["face_id"].iloc[1].split()) == set(assigned)

    # The second person's picture: their last face, chosen; it comes first.
    open_person(browser, second)
    cover = browser.find_elements("css selector", "#faces button.cover")[-1]
    chosen = cover.get_attribute("data-face_id")
    with next_page(browser):
        cover.click()
    assert faces_on_page(browser)[0] == chosen

    assert facecluster("cluster", "--out", out, "--set", "spark.master=local[2]") == 0
    after = person_of(out)
    first_now = after[list(set(before.index[before == first]) - set(moved))].mode()[0]
    assert all(after[f] != first_now for f in moved), "the faces moved out are not put back"
    second_now = after[next(iter(set(before.index[before == second])))]
    assert all(after[f] == second_now for f in assigned), "every face of the one assign is the second person"
    people = pd.read_parquet(out / "people").set_index("person_id")
    assert people.loc[second_now, "exemplar_face_id"] == chosen, "the picture chosen"


@needs_browser
def test_a_face_in_its_photo_with_every_face_boxed_and_the_date(served, browser):
    """From a person's face to its whole photo: a box per face with its person, the album, the file
    and the date read from the photo's EXIF; a box leads to its person."""
    out, address = served
    faces = pd.read_parquet(out / "faces", columns=["face_id", "photo_id"])
    photos = pd.read_parquet(out / "photos", columns=["photo_id", "path", "taken_at", "taken_at_source"])
    dated = photos[photos["path"].str.endswith("2023_holiday/img14.jpg")].iloc[0]
    assert dated["taken_at_source"] == "exif" and str(dated["taken_at"]) == "2016-08-05 12:00:45", "EXIF DateTimeOriginal"
    assert (photos.loc[photos["taken_at_source"] != "exif", "taken_at_source"] == "file").all()
    person = person_of(out)
    face = faces[faces["photo_id"] == dated["photo_id"]]["face_id"].iloc[0]
    browser.get(address)
    wait_for(lambda: browser.execute_script("return document.readyState") == "complete")
    if person[face] >= 0:
        open_person(browser, int(person[face]))
    else:
        with next_page(browser):
            browser.find_element("id", "nav-not-grouped").click()
    card = browser.find_element("css selector", f"#faces .face-card[data-face-id='{face}']")
    with next_page(browser):
        card.find_element("css selector", "a.in-photo").click()
    assert browser.find_element("id", "photo-title").text == "img14.jpg"
    assert "taken 2016-08-05 12:00" in browser.find_element("id", "photo-when").text
    assert "2023_holiday" in browser.find_element("id", "photo-facts").text
    boxes = browser.find_elements("css selector", "#photo a.box")
    assert len(boxes) == int((faces["photo_id"] == dated["photo_id"]).sum())
    wait_for(lambda: browser.execute_script("const i = document.querySelector('#photo img');"
                                            "return i.complete && i.naturalWidth > 0"))
    grouped = [b for b in boxes if person[b.get_attribute("data-face-id")] >= 0]
    if grouped:
        with next_page(browser):
            grouped[0].click()
        assert browser.find_element("id", "person-title")


@needs_browser
def test_fixed_in_its_photo_then_found_together(served, browser):
    """In a group photo, a face not grouped is assigned to a person from the photo page; the
    person in the photo beside it then lists them as 'in photos with', and that leads to the
    photo they share."""
    out, address = served
    faces = pd.read_parquet(out / "faces", columns=["face_id", "photo_id"])
    person = person_of(out)
    faces["person_id"] = faces["face_id"].map(person)
    crowded = faces.groupby("photo_id").filter(lambda f: (f["person_id"] >= 0).any() and (f["person_id"] < 0).any())
    photo = crowded["photo_id"].value_counts().index[0]
    here = crowded[crowded["photo_id"] == photo]
    anchor = int(here.loc[here["person_id"] >= 0, "person_id"].iloc[0])
    loose = here.loc[here["person_id"] < 0, "face_id"].iloc[0]
    other = next(int(p) for p in person[person >= 0].value_counts().index if int(p) != anchor)

    browser.get(address.split("?")[0] + f"photo/{photo}?" + address.split("?")[1])
    wait_for(lambda: browser.find_element("id", "photo-title"))
    card = browser.find_element("css selector", f"#faces .face-card[data-face-id='{loose}']")
    card.find_element("css selector", "form.assign-other input[name=person_id]").send_keys(str(other))
    with next_page(browser):
        card.find_element("css selector", "form.assign-other button").click()
    box = browser.find_element("css selector", f"#photo a.box[data-face-id='{loose}']")
    assert box.text == f"person {other}", "the box shows the person the face was given"

    open_person(browser, anchor)
    link = browser.find_element("css selector", f"#together a.photos-with[href='/person/{anchor}/with/{other}']")
    assert link.text.startswith("1 photo")
    with next_page(browser):
        link.click()
    shown = browser.find_elements("css selector", "#photos .together-photo a")
    assert [a.get_attribute("href").rsplit("/", 1)[-1] for a in shown] == [photo]
