"""`facecluster review OUT`: a local web page to look at the people of a run and fix them.

Served by Python's own HTTP server, one page per view (people, a person, the faces not
grouped), thumbnails fetched by the browser as they scroll in. Every action appends a line to
OUT/labels.csv through `add_label`, as `facecluster label` does, and the page shows its effect
at once; the next `facecluster cluster` obeys it. Every request carries a token (a cookie set
from the address printed at start), so no other web page in the browser can act on the run.
"""
from __future__ import annotations

import hmac
import html
import ipaddress
import json
import re
import secrets
import sys
import threading
import traceback
from http import HTTPStatus
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, urlsplit

import numpy as np

from facecluster.core.errors import UserError
from facecluster.grouping.clustering import NOISE
from facecluster.viewing.review import NOT_A_FACE, FaceStore, ReviewState

PEOPLE_PER_PAGE = 50
FACES_PER_PERSON_ROW = 8
FACES_PER_PAGE = 120
NOT_GROUPED_PER_PAGE = 60
PHOTO_SIDE = 1600  # pixels of the longer side of a photo shown whole
PHOTO_MAX_PIXELS = 200_000_000  # a photo the embed job read is shown whatever its size
PHOTO_ID = re.compile(r"[0-9a-f]{64}")  # sha256 of the photo's bytes
COOKIE = "facecluster_review"  # + the port: cookies are not kept per port, two pages on two ports would share one
MIN_TOKEN = 16  # characters of a token the user gives (--token): guessing must not be a matter of minutes
MAX_BODY = 64 * 1024  # bytes of an action's request: a label is a few fields

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #222; background: #f6f6f6; }
header { background: #263238; color: white; padding: 10px 20px; display: flex; gap: 18px; align-items: center; }
header a { color: white; } header .pending { margin-left: auto; color: #ffd54f; }
main { padding: 16px 20px; } h1 { font-size: 20px; margin: 4px 0 12px; }
.person { background: white; border: 1px solid #ddd; border-radius: 6px; padding: 8px 10px; margin: 8px 0; }
.person h3 { margin: 0 0 4px; font-size: 15px; }
img.face { width: 80px; height: 80px; object-fit: cover; border-radius: 4px; background: #ddd; }
.faces { display: flex; flex-wrap: wrap; gap: 6px; }
.face-card { background: white; border: 1px solid #ddd; border-radius: 6px; padding: 4px; width: 176px; font-size: 12px; }
.face-card.small { width: 88px; } .face-card .row { display: flex; gap: 4px; align-items: center; }
button { font: inherit; padding: 2px 8px; border-radius: 4px; border: 1px solid #999; background: #fff; cursor: pointer; }
button:hover { background: #eef; } button.danger { border-color: #c62828; color: #c62828; }
form { display: inline-flex; gap: 4px; margin: 4px 8px 4px 0; } input { font: inherit; padding: 2px 4px; }
.panel { background: white; border: 1px solid #ddd; border-radius: 6px; padding: 8px 12px; margin: 10px 0; }
.pager a, .pager span { margin-right: 10px; } .muted { color: #666; } .why { color: #b71c1c; font-size: 12px; }
.face-card.selected { outline: 3px solid #1565c0; background: #e3f2fd; } .face-card.focused { box-shadow: 0 0 0 2px #ff8f00; }
.face-card > img.face { cursor: pointer; } .face-card a.in-photo { font-size: 11px; }
#selection { position: sticky; top: 0; z-index: 2; display: flex; flex-wrap: wrap; gap: 6px; align-items: center; }
#selection:not(.active) .needs-selection { opacity: 0.45; pointer-events: none; }
.keys { font-size: 12px; color: #555; } .keys kbd { border: 1px solid #aaa; border-radius: 3px; padding: 0 4px; background: #fafafa; }
.photo { position: relative; display: inline-block; line-height: 0; } .photo img { max-width: 100%; max-height: 78vh; }
.photo .box { position: absolute; border: 2px solid #ffeb3b; box-shadow: 0 0 0 1px #000; line-height: 1.2; }
.photo .box span { position: absolute; left: -2px; top: 100%; background: rgba(0,0,0,.75); color: #fff; font-size: 12px;
                   padding: 1px 4px; white-space: nowrap; } .photo .box.noise { border-color: #bbb; }
.photo .box.target { border-color: #ff5722; }
table.years td { padding: 0 10px 0 0; }
#message { position: fixed; bottom: 16px; right: 16px; background: #b71c1c; color: white; padding: 8px 12px;
           border-radius: 6px; display: none; max-width: 480px; }
"""

SCRIPT = """
const token = document.body.dataset.token;
function fields(element) {
  const data = {};
  for (const [key, value] of Object.entries(element.dataset)) if (key !== 'go') data[key] = value;
  if (element.tagName === 'FORM') new FormData(element).forEach((value, key) => { data[key] = value; });
  return data;
}
async function send(path, body, go) {
  const answer = await fetch(path, {method: 'POST', headers: {'Content-Type': 'application/json',
                                    'X-Review-Token': token}, body: JSON.stringify(body)});
  const reply = await answer.json();
  if (!answer.ok) { const box = document.getElementById('message'); box.textContent = reply.error;
                    box.style.display = 'block'; return; }
  if (go) location.href = go; else location.reload();
}
document.addEventListener('click', event => {
  const button = event.target.closest('button[data-action]');
  if (!button || button.form) return;
  event.preventDefault();
  send(button.dataset.action === 'undo' ? '/api/undo' : '/api/label', fields(button), button.dataset.go);
});
document.addEventListener('submit', event => {
  const form = event.target.closest('form[data-action]');
  if (!form) return;
  event.preventDefault();
  send('/api/label', fields(form), form.dataset.go);
});
// Many faces at once: click a face to select it, shift-click to select a range, then one action
// for all of them (one line of the label log, taken back by one undo).
let anchor = null, focused = null;
const cards = () => [...document.querySelectorAll('#faces .face-card')];
const chosen = () => cards().filter(card => card.classList.contains('selected'));
function showSelection() {
  const bar = document.getElementById('selection');
  if (!bar) return;
  const count = chosen().length;
  bar.querySelector('.count').textContent = count;
  bar.classList.toggle('active', count > 0);
}
function focusCard(card) {
  if (focused) focused.classList.remove('focused');
  focused = card;
  if (card) { card.classList.add('focused'); card.scrollIntoView({block: 'nearest'}); }
}
function pick(card, range) {
  const all = cards();
  if (range && anchor && all.includes(anchor)) {
    const [a, b] = [all.indexOf(anchor), all.indexOf(card)].sort((x, y) => x - y);
    for (let i = a; i <= b; i++) all[i].classList.add('selected');
  } else {
    card.classList.toggle('selected');
    anchor = card;
  }
  focusCard(card);
  showSelection();
}
function selectAll(on) { cards().forEach(card => card.classList.toggle('selected', on)); showSelection(); }
function actOnSelection(action, extra) {
  const faces = chosen().map(card => card.dataset.faceId);
  if (!faces.length) return;
  send('/api/label', Object.assign({action: action, face_id: faces.join(' ')}, extra || {}));
}
document.addEventListener('click', event => {
  const face = event.target.closest('#faces .face-card > img.face');  // not the nearest person's face beside it
  if (face) { event.preventDefault(); pick(face.closest('.face-card'), event.shiftKey); return; }
  const batch = event.target.closest('button[data-batch]');
  if (batch && !batch.form) { event.preventDefault();
    if (batch.dataset.batch === 'all') selectAll(true); else if (batch.dataset.batch === 'none') selectAll(false);
    else actOnSelection(batch.dataset.batch); }
}, true);
document.addEventListener('submit', event => {
  const form = event.target.closest('form[data-batch]');
  if (!form) return;
  event.preventDefault();
  const extra = {};
  new FormData(form).forEach((value, key) => { if (value !== '') extra[key] = value; });
  actOnSelection(form.dataset.batch, extra);
});
document.addEventListener('keydown', event => {
  if (event.target.closest('input, textarea, select') || event.ctrlKey || event.metaKey || event.altKey) return;
  const all = cards(), at = all.indexOf(focused);
  const go = rel => { const link = document.querySelector(`.pager a[rel=${rel}]`); if (link) location.href = link.href; };
  const keys = {
    n: () => go('next'), ArrowRight: () => go('next'), p: () => go('prev'), ArrowLeft: () => go('prev'),
    j: () => focusCard(all[Math.min(all.length - 1, at + 1)] || null), k: () => focusCard(all[Math.max(0, at - 1)] || null),
    x: () => focused && pick(focused, event.shiftKey), ' ': () => focused && pick(focused, event.shiftKey),
    a: () => selectAll(true), Escape: () => selectAll(false),
    m: () => document.querySelector('#selection [data-batch=move_out]') && actOnSelection('move_out'),
    d: () => actOnSelection('not_a_face'),
    u: () => { const undo = document.getElementById('undo'); if (undo) undo.click(); },
  };
  const key = keys[event.key];
  if (key) { event.preventDefault(); key(); }
});
"""

ACTION_WORDS = {"name": "rename", "merge": "merge", "move_out": "move out", "not_a_face": "not a face",
                "assign": "assign", "hide": "hide", "cover": "cover", "forgotten": "forgotten line"}


def _e(text) -> str:
    return html.escape(str(text), quote=True)


class Review:
    """The state behind the pages (reloaded when a cluster run rewrites the tables)."""

    def __init__(self, out: str, cache=None):
        self.out, self.cache = out, cache
        self.lock = threading.RLock()
        self.store = FaceStore(out, cache)
        self.state = ReviewState(out, self.store)

    def current(self) -> ReviewState:
        with self.lock:
            if self.state.stale():
                self.store = FaceStore(self.out, self.cache)
                self.state = ReviewState(self.out, self.store)
            return self.state

    # -- pages -------------------------------------------------------------------------------

    def _frame(self, state: ReviewState, title: str, body: str, token: str) -> str:
        pending = len(state.pending)
        if pending:
            last = state.pending.iloc[-1]
            undo = (f"<span class='pending'>{pending} change{'s' if pending > 1 else ''} wait for "
                    f"<code>facecluster cluster</code></span><button data-action='undo' id='undo'>Undo "
                    f"{_e(ACTION_WORDS.get(last.action, last.action))}</button>")
        else:
            undo = "<span class='pending muted'>no changes waiting</span>"
        not_grouped = len(state.face_rows(NOISE))
        return (f"<!doctype html><html><head><meta charset='utf-8'><title>{_e(title)} · facecluster review</title>"
                f"<style>{STYLE}</style></head><body data-token='{_e(token)}'>"
                f"<header><b>facecluster review</b><a href='/' id='nav-people'>People ({len(state.ranking)})</a>"
                f"<a href='/not-grouped' id='nav-not-grouped'>Not grouped ({not_grouped})</a>{undo}</header>"
                f"<main>{body}</main><div id='message'></div><script>{SCRIPT}</script></body></html>")

    def _img(self, row: int, title: str = "") -> str:
        face_id = self.store.face_ids[row]
        return (f"<img class='face' loading='lazy' src='/thumb/{self.store.folder.name}/{int(row)}' "
                f"alt='face' title='{_e(title or face_id)}' data-face-id='{_e(face_id)}'>")

    @staticmethod
    def _pager(path: str, page: int, total: int, per_page: int, extra: str = "") -> str:
        pages = max(1, -(-total // per_page))
        if pages == 1:
            return ""
        parts = ["<div class='pager'>"]
        if page > 0:
            parts.append(f"<a href='{path}?page={page - 1}{extra}' rel='prev'>previous</a>")
        parts.append(f"<span>page {page + 1} of {pages}</span>")
        if page + 1 < pages:
            parts.append(f"<a href='{path}?page={page + 1}{extra}' rel='next'>next</a>")
        return "".join(parts) + "</div>"

    def people_page(self, query: dict, token: str) -> str:
        state = self.current()
        page, wanted = _page(query), query.get("q", [""])[0]
        people, total = state.people_page(page, PEOPLE_PER_PAGE, wanted)
        parts = [f"<h1>People, most faces first</h1><form method='get' action='/'><input name='q' "
                 f"placeholder='name or person number' value='{_e(wanted)}'><button>Find</button></form>"]
        for person in people:
            faces = "".join(self._img(row) for row in person.rows[:FACES_PER_PERSON_ROW])
            link = (f"<a href='/person/{person.person_id}' class='person-link' data-person-id='{person.person_id}'>"
                    f"{_e(person.title)}</a>") if not person.new else _e(person.title)
            parts.append(f"<div class='person' id='person-{person.person_id}'><h3>{link} · {person.n_faces} faces"
                         f"{' · numbered at the next cluster' if person.new else ''}</h3>"
                         f"<div class='faces'>{faces}</div></div>")
        parts.append(self._pager("/", page, total, PEOPLE_PER_PAGE, f"&q={quote(wanted)}" if wanted else ""))
        return self._frame(state, "People", "".join(parts), token)

    def _face_card(self, state: ReviewState, row: int, buttons: str = "", wide: bool = False) -> str:
        """A face: a click selects it (for the selection bar's actions), a link shows its photo."""
        face_id, photo_id = _e(state.store.face_ids[row]), _e(state.store.photo_ids[row])
        return (f"<div class='face-card{'' if wide else ' small'}' data-face-id='{face_id}'>{self._img(row)}"
                f"<div class='row'><a class='in-photo' href='/photo/{photo_id}#face-{int(row)}'>in its photo</a></div>"
                f"{buttons}</div>")

    @staticmethod
    def _selection_bar(move_out: bool) -> str:
        move = ("<button class='needs-selection' data-batch='move_out' id='batch-move-out' title='not this person'>"
                "Move out</button>") if move_out else ""
        return ("<div class='panel' id='selection'><b><span class='count'>0</span> selected</b>"
                "<button data-batch='all' id='select-all'>Select all on this page</button>"
                "<button data-batch='none' id='select-none'>Clear</button>" + move +
                "<button class='needs-selection' data-batch='not_a_face' id='batch-not-a-face'>Not a face</button>"
                "<form data-batch='assign' id='batch-assign' class='needs-selection'><input name='person_id' "
                "placeholder='person number' size='8' inputmode='numeric' required><button type='submit'>Assign</button>"
                "</form><form data-batch='assign' id='batch-new-person' class='needs-selection'><input name='name' "
                "placeholder='new person: name' size='12'><button type='submit'>New person</button></form></div>"
                "<div class='keys' id='keys'>Click a face to select it, shift-click for a range. Keys: "
                "<kbd>j</kbd>/<kbd>k</kbd> next/previous face · <kbd>x</kbd> select it (<kbd>shift</kbd>+<kbd>x</kbd>: "
                "up to it) · <kbd>a</kbd> select all · <kbd>Esc</kbd> clear" + (" · <kbd>m</kbd> move out" if move_out else "") +
                " · <kbd>d</kbd> not a face · <kbd>u</kbd> undo · <kbd>n</kbd>/<kbd>p</kbd> next/previous page</div>")

    def person_page(self, person_id: int, query: dict, token: str) -> str | None:
        """A person: their faces first (the most certain first), then their albums and years, the
        people in photos with them, and the people nearest them (a merge offered only when near)."""
        state = self.current()
        person = state.person(person_id)
        if person is None or person.new:
            return None
        page = _page(query)
        photos = len(set(state.store.photo_ids[person.rows]))
        parts = [f"<h1 id='person-title'>{_e(person.title)}</h1><div class='muted'>person {person_id} · "
                 f"{person.n_faces} faces in {photos} photos</div>",
                 f"<div class='panel'><form data-action='name' data-person_id='{person_id}' id='rename'>"
                 f"<input name='name' placeholder='name' value='{_e(person.name or '')}' required>"
                 f"<button type='submit'>Rename</button></form>"
                 f"<button class='danger' data-action='hide' data-person_id='{person_id}' data-go='/' id='hide'>"
                 f"Hide this person</button></div>", self._selection_bar(move_out=True)]
        faces = []
        for row in person.rows[page * FACES_PER_PAGE:(page + 1) * FACES_PER_PAGE]:
            face_id = _e(state.store.face_ids[row])
            faces.append(self._face_card(state, row, f"<div class='row'><button data-action='move_out' "
                                                     f"data-face_id='{face_id}' title='not this person'>move out</button>"
                                                     f"</div><div class='row'><button data-action='not_a_face' "
                                                     f"data-face_id='{face_id}'>not a face</button></div>"
                                                     f"<div class='row'><button data-action='cover' class='cover' "
                                                     f"data-face_id='{face_id}' title='show this face for the person'>"
                                                     f"cover</button></div>"))
        parts.append(f"<div class='faces' id='faces'>{''.join(faces)}</div>")
        parts.append(self._pager(f"/person/{person_id}", page, person.n_faces, FACES_PER_PAGE))
        albums = ", ".join(f"{_e(a)} ({n})" for a, n in state.albums_of(person_id))
        years = "".join(f"<tr><td>{_e(y)}</td><td>{n} photo{'s' if n > 1 else ''}</td></tr>"
                        for y, n in state.years_of(person_id))
        parts.append(f"<div class='panel' id='albums'><b>Albums</b> (faces there): {albums}<br><b>Years</b> "
                     f"(from the photos' own dates):<table class='years' id='years'>{years}</table></div>")
        together = "".join(
            f"<li><a href='/person/{other}'>{_e(state.person(other).title)}</a>: <a class='photos-with' "
            f"href='/person/{person_id}/with/{other}'>{n} photo{'s' if n > 1 else ''} together</a></li>"
            for other, n in state.together_with(person_id) if state.person(other) is not None)
        parts.append(f"<div class='panel' id='together'><b>In photos with</b>"
                     f"<ul>{together or '<li class=muted>no one</li>'}</ul></div>")
        parts.append(self._merge_panel(state, person, query))
        return self._frame(state, person.title, "".join(parts), token)

    def photo_page(self, photo_id: str, token: str) -> str | None:
        """A whole photo with every face's box and person, where it is and when; each face can be
        fixed here like anywhere else."""
        state = self.current()
        photo = state.photo(photo_id)
        if photo is None:
            return None
        boxes, cards = [], []
        width, height = max(photo.width, 1), max(photo.height, 1)
        for row in photo.rows:
            person = int(state.person_of[row])
            shown = state.person(person) if person >= 0 else None
            x1, y1, x2, y2 = (float(v) for v in state.store.boxes[row])
            label = shown.title if shown else ("not a face" if person == NOT_A_FACE else "not grouped")
            link = f"/person/{person}" if shown and not shown.new else f"#face-{int(row)}"
            boxes.append(f"<a class='box{'' if shown else ' noise'}' id='box-{int(row)}' href='{link}' "
                         f"data-face-id='{_e(state.store.face_ids[row])}' style='left:{100 * x1 / width:.2f}%;"
                         f"top:{100 * y1 / height:.2f}%;width:{100 * (x2 - x1) / width:.2f}%;"
                         f"height:{100 * (y2 - y1) / height:.2f}%'><span>{_e(label)}</span></a>")
            face_id = _e(state.store.face_ids[row])
            who = (f"<a href='{link}' class='face-person'>{_e(label)}</a>" if shown and not shown.new
                   else f"<span class='face-person'>{_e(label)}</span>")
            move = (f"<button data-action='move_out' data-face_id='{face_id}'>move out</button>" if shown else "")
            cards.append(f"<div id='face-{int(row)}'>" + self._face_card(
                state, row, f"<div class='row'>{who}</div><div class='row'>{move}<button data-action='not_a_face' "
                            f"data-face_id='{face_id}'>not a face</button></div><form data-action='assign' "
                            f"data-face_id='{face_id}' class='assign-other'><input name='person_id' "
                            f"placeholder='person number' size='6' inputmode='numeric' required><button "
                            f"type='submit'>assign</button></form>", wide=True) + "</div>")
        name = photo.path.rsplit("/", 1)[-1]
        albums = ", ".join(_e(a) for a in photo.albums) or _e(photo.album)
        body = (f"<h1 id='photo-title'>{_e(name)}</h1><div class='muted' id='photo-facts'>album: {albums} · "
                f"<span id='photo-when'>{_e(photo.when)}</span> · {photo.width}×{photo.height} · "
                f"<code>{_e(photo.path)}</code></div>"
                f"<div class='photo' id='photo'><img src='/photo-image/{_e(photo_id)}' alt='{_e(name)}'>"
                f"{''.join(boxes)}</div>{self._selection_bar(move_out=True)}"
                f"<div class='faces' id='faces'>{''.join(cards)}</div>")
        return self._frame(state, name, body, token)

    def together_page(self, person_id: int, other_id: int, token: str) -> str | None:
        """The photos that hold both people."""
        state = self.current()
        first, second = state.person(person_id), state.person(other_id)
        if first is None or second is None:
            return None
        shown = []
        for photo_id in state.photos_with(person_id, other_id)[:200]:
            photo = state.photo(photo_id)
            if photo is None:
                continue
            shown.append(f"<div class='face-card together-photo'><a href='/photo/{_e(photo_id)}'><img loading='lazy' "
                         f"src='/photo-image/{_e(photo_id)}?size=320' style='max-width:168px' alt=''></a>"
                         f"<div>{_e(photo.album)} · {_e(photo.when)}</div></div>")
        body = (f"<h1>{_e(first.title)} with {_e(second.title)}</h1><div class='faces' id='photos'>"
                f"{''.join(shown) or '<span class=muted>no photo holds both</span>'}</div>")
        return self._frame(state, f"{first.title} with {second.title}", body, token)

    def _merge_panel(self, state: ReviewState, person, query: dict) -> str:
        """People to merge with: those found by a search, or the nearest people. Only those within
        the merge-suggestion distance (the one the report and the notebook use) get a merge
        button unasked; the others are shown for what they are, most likely someone else."""
        wanted = query.get("merge_q", [""])[0]
        limit = state.suggest_merge
        if wanted:
            found, _ = state.people_page(0, 10, wanted)
            candidates = [(p.person_id, None) for p in found if p.person_id != person.person_id and not p.new]
            heading = f"People matching “{_e(wanted)}”"
        else:
            vector = state.centroids[state.centroid_ids == person.person_id]
            if len(vector):
                ids, distances = state.nearest_people(vector, count=5, exclude=person.person_id)
                candidates = list(zip(ids[0].tolist(), distances[0].tolist()))
            else:
                candidates = []
            heading = (f"Nearest people: a merge is offered only within {limit:.2f}, the distance under which two "
                       "people are suggested as perhaps one")
        rows = []
        for other, distance in candidates:
            shown = state.person(other)
            if shown is None:
                continue
            faces = "".join(self._img(row) for row in shown.rows[:5])
            why = ""
            together = state.shares_a_photo(person.person_id, other)
            if together:
                why = "<span class='why'>shares a photo with this person: two people in one photo</span>"
            if distance is None:
                measure, offer = "", True
            elif distance <= limit and not together:
                measure, offer = f" · distance {distance:.2f}: perhaps the same person", True
            else:
                measure, offer = f" · distance {distance:.2f}: most likely someone else", False
            button = (f"<button data-action='merge' data-person_id='{person.person_id}' data-other_person_id="
                      f"'{other}'>Same person: merge into {_e(person.title)}</button> " if offer else "")
            rows.append(f"<div class='person merge-candidate' data-person-id='{other}'><h3>{_e(shown.title)} · "
                        f"{shown.n_faces} faces{measure}</h3><div class='faces'>{faces}</div>{button}{why}</div>")
        search = (f"<form method='get' action='/person/{person.person_id}'><input name='merge_q' "
                  f"placeholder='find a person to merge: name or number' value='{_e(wanted)}'>"
                  f"<button id='merge-search'>Find</button></form>")
        return (f"<div class='panel' id='merge'><b>{heading}</b><br>{search}"
                f"{''.join(rows) or '<div class=muted>none</div>'}</div>")

    def not_grouped_page(self, query: dict, token: str) -> str:
        state = self.current()
        page = _page(query)
        rows, total = state.not_grouped_page(page, NOT_GROUPED_PER_PAGE)
        nearest, distances = state.nearest_people(np.asarray(state.store.embeddings[np.sort(rows)]), count=1)
        by_row = {int(r): i for i, r in enumerate(np.sort(rows))}
        cards = []
        for row in rows:
            face_id = _e(state.store.face_ids[row])
            likely = ""
            i = by_row[int(row)]
            if nearest.shape[1]:
                other = state.person(int(nearest[i, 0]))
                if other is not None:
                    likely = (f"<div class='row'>{self._img(other.rows[0], other.title)}<div>nearest: "
                              f"<a href='/person/{other.person_id}'>{_e(other.title)}</a><br>distance "
                              f"{distances[i, 0]:.2f}<br><button data-action='assign' data-face_id='{face_id}' "
                              f"data-person_id='{other.person_id}' class='assign-nearest'>is {_e(other.title)}"
                              f"</button></div></div>")
            cards.append(self._face_card(state, row, f"{likely}<form data-action='assign' data-face_id='{face_id}' class='assign-other'>"
                         f"<input name='person_id' placeholder='person number' size='8' inputmode='numeric' required>"
                         f"<button type='submit'>assign</button></form>"
                         f"<form data-action='assign' data-face_id='{face_id}' class='assign-new'>"
                         f"<input name='name' placeholder='new person: name' size='12'>"
                         f"<button type='submit'>new person</button></form>"
                         f"<button data-action='not_a_face' data-face_id='{face_id}'>not a face</button>", wide=True))
        body = (f"<h1>Faces not grouped ({total})</h1><p class='muted'>Seen once, or unsure: each with the person "
                f"it lies nearest.</p>{self._selection_bar(move_out=False)}<div class='faces' id='faces'>{''.join(cards)}</div>"
                + self._pager("/not-grouped", page, total, NOT_GROUPED_PER_PAGE))
        return self._frame(state, "Not grouped", body, token)

    def photo_image(self, photo_id: str, side: int) -> bytes | None:
        """The photo upright (as its boxes are), scaled to `side` pixels at most, as JPEG."""
        from facecluster.udfs.decode import PhotoError, decode_photo, jpeg_bytes

        content = self.current().photo_content(photo_id)
        if content is None:
            return None
        try:
            return jpeg_bytes(decode_photo(content, PHOTO_MAX_PIXELS).pixels, side)
        except PhotoError:
            return None

    # -- actions -----------------------------------------------------------------------------

    def label(self, body: dict) -> str:
        from facecluster.core.lock import output_lock
        from facecluster.curation.labels import add_label

        state = self.current()
        local = state.local_out
        if local is None:
            raise UserError(f"{self.out} is not a local folder: labels are written to a local run's labels.csv")
        action = str(body.get("action", ""))
        fields = {"person_id": _number(body.get("person_id")), "other_person_id": _number(body.get("other_person_id")),
                  "face_id": str(body.get("face_id") or "") or None, "name": str(body.get("name") or "").strip() or None}
        for key in ("person_id", "other_person_id"):
            person = fields[key]
            if person is not None and state.person(person) is None:
                raise UserError(f"there is no person {person} on these pages now "
                                "(merged, hidden, or new until the next cluster run)")
        if action == "name" and not fields["name"]:
            raise UserError("a name cannot be empty")
        with self.lock, output_lock(local, "review"):
            add_label(local, action, **fields, assignments=state.run_assignments)
            state.refresh()
        return f"{ACTION_WORDS.get(action, action)} written to labels.csv"

    def undo(self) -> str:
        from facecluster.core.lock import output_lock
        from facecluster.curation.labels import undo_last_label

        state = self.current()
        if state.local_out is None:
            raise UserError(f"{self.out} is not a local folder")
        with self.lock, output_lock(state.local_out, "review"):
            line = undo_last_label(state.local_out)
            state.refresh()
        return f"took back: {ACTION_WORDS.get(line.action, line.action)}"


def _page(query: dict) -> int:
    try:
        return max(0, int(query.get("page", ["0"])[0]))
    except ValueError:
        return 0


def _number(value) -> int | None:
    if value is None or str(value).strip() == "":
        return None
    try:
        return int(str(value).strip().lstrip("#"))
    except ValueError:
        raise UserError(f"{value!r} is not a person number") from None


def make_handler(review: Review, token: str):
    class Handler(BaseHTTPRequestHandler):
        server_version = "facecluster-review"
        protocol_version = "HTTP/1.1"  # keep-alive: a page's thumbnails come over a few connections

        def log_message(self, format, *args):  # quiet: the terminal shows only the address and errors
            pass

        def log_error(self, format, *args):
            sys.stderr.write(format % args + "\n")

        @property
        def _cookie(self) -> str:
            return f"{COOKIE}_{self.server.server_address[1]}"

        def _token_ok(self, query: dict) -> bool:
            given = self.headers.get("X-Review-Token") or query.get("token", [None])[0]
            if not given:
                try:
                    cookie = SimpleCookie(self.headers.get("Cookie", ""))
                except Exception:  # noqa: BLE001 - a malformed cookie header carries no token
                    cookie = {}
                given = cookie[self._cookie].value if self._cookie in cookie else None
            return bool(given) and hmac.compare_digest(str(given).encode(), token.encode())

        def _action_token_ok(self) -> bool:
            """An action carries the token in its own header, never by cookie alone: a page on
            another port of 127.0.0.1 is the same site to the browser and could post a form with
            the cookie, but it cannot add a header without asking first (CORS), and is refused."""
            given = self.headers.get("X-Review-Token")
            return bool(given) and hmac.compare_digest(given.encode(), token.encode())

        def _send(self, status, body: bytes, kind: str, headers: dict | None = None):
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("X-Content-Type-Options", "nosniff")
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

        def _html(self, text: str, status=HTTPStatus.OK, headers=None):
            self._send(status, text.encode("utf-8"), "text/html; charset=utf-8", headers)

        def _json(self, payload: dict, status=HTTPStatus.OK):
            self._send(status, json.dumps(payload).encode("utf-8"), "application/json")

        def do_GET(self):
            url = urlsplit(self.path)
            query = parse_qs(url.query)
            if not self._token_ok(query):
                return self._html("<p>This page needs the review token: open the address that "
                                  "<code>facecluster review</code> printed.</p>", HTTPStatus.FORBIDDEN)
            headers = {}
            if "token" in query:  # the first visit: later requests carry it as a cookie
                headers["Set-Cookie"] = f"{self._cookie}={token}; HttpOnly; SameSite=Strict; Path=/"
            parts = [p for p in url.path.split("/") if p]
            try:
                if not parts:
                    return self._html(review.people_page(query, token), headers=headers)
                if parts[0] == "person" and len(parts) == 2 and parts[1].isdigit():
                    page = review.person_page(int(parts[1]), query, token)
                    if page is None:
                        return self._html(f"<p>No person {int(parts[1])} now (merged, hidden or emptied). "
                                          "<a href='/'>All people</a></p>", HTTPStatus.NOT_FOUND)
                    return self._html(page, headers=headers)
                if parts[0] == "person" and len(parts) == 4 and parts[2] == "with" and parts[1].isdigit() \
                        and parts[3].isdigit():
                    page = review.together_page(int(parts[1]), int(parts[3]), token)
                    if page is None:
                        return self._html("<p>No such people now. <a href='/'>All people</a></p>", HTTPStatus.NOT_FOUND)
                    return self._html(page, headers=headers)
                if parts[0] == "photo" and len(parts) == 2 and PHOTO_ID.fullmatch(parts[1]):
                    page = review.photo_page(parts[1], token)
                    if page is None:
                        return self._html("<p>No such photo in this run (forgotten?). <a href='/'>All people</a></p>",
                                          HTTPStatus.NOT_FOUND)
                    return self._html(page, headers=headers)
                if parts[0] == "photo-image" and len(parts) == 2 and PHOTO_ID.fullmatch(parts[1]):
                    image = review.photo_image(parts[1], 320 if query.get("size") == ["320"] else PHOTO_SIDE)
                    if image is None:
                        return self._send(HTTPStatus.NOT_FOUND, b"", "text/plain")
                    return self._send(HTTPStatus.OK, image, "image/jpeg", {"Cache-Control": "private, max-age=3600"})
                if parts == ["not-grouped"]:
                    return self._html(review.not_grouped_page(query, token), headers=headers)
                if parts[0] == "thumb" and len(parts) == 3 and parts[2].isdigit():
                    store = review.store
                    row = int(parts[2])
                    if parts[1] != store.folder.name or row >= len(store.face_ids):
                        return self._send(HTTPStatus.NOT_FOUND, b"", "text/plain")
                    return self._send(HTTPStatus.OK, store.thumb(row), "image/jpeg",
                                      {"Cache-Control": "private, max-age=86400"})
            except UserError as exc:
                return self._html(f"<p>{_e(exc)}</p>", HTTPStatus.BAD_REQUEST)
            except Exception as exc:  # a bug shows on the page, and the server goes on
                self.log_error("%s", traceback.format_exc())
                return self._html(f"<p>Error: {_e(exc)}</p>", HTTPStatus.INTERNAL_SERVER_ERROR)
            self._html("<p>Not found. <a href='/'>All people</a></p>", HTTPStatus.NOT_FOUND)

        def do_POST(self):
            url = urlsplit(self.path)
            self.close_connection = True  # a refused request's body is never read: do not read the next from it
            if not self._action_token_ok():
                return self._json({"error": "missing or wrong review token (actions send it in the "
                                            "X-Review-Token header)"}, HTTPStatus.FORBIDDEN)
            if self.headers.get_content_type() != "application/json":
                return self._json({"error": "an action is a JSON object (Content-Type: application/json)"},
                                  HTTPStatus.UNSUPPORTED_MEDIA_TYPE)
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if not 0 <= length <= MAX_BODY:
                return self._json({"error": f"an action's body must have a Content-Length of 0 to {MAX_BODY} bytes"},
                                  HTTPStatus.BAD_REQUEST)
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
                if not isinstance(body, dict) or not all(
                        isinstance(v, (str, int, type(None))) and not isinstance(v, bool) for v in body.values()):
                    raise UserError("an action is a JSON object of text or whole-number fields")
                if url.path == "/api/label":
                    return self._json({"message": review.label(body)})
                if url.path == "/api/undo":
                    return self._json({"message": review.undo()})
            except (UserError, ValueError) as exc:
                return self._json({"error": str(exc)}, HTTPStatus.BAD_REQUEST)
            except Exception as exc:
                self.log_error("%s", traceback.format_exc())
                return self._json({"error": f"error: {exc}"}, HTTPStatus.INTERNAL_SERVER_ERROR)
            self._json({"error": "no such action"}, HTTPStatus.NOT_FOUND)

    return Handler


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def start_review(out: str, host: str = "127.0.0.1", port: int = 0, token: str | None = None,
                 cache=None) -> tuple[ThreadingHTTPServer, str]:
    """The server (not yet serving) and the address to open, token included."""
    if not is_loopback(host) and not token:
        raise UserError(f"review on {host} is reachable from other machines: give a --token that every request "
                        "must carry (or serve on 127.0.0.1)")
    if token is not None and len(token) < MIN_TOKEN:
        raise UserError(f"--token must be at least {MIN_TOKEN} characters (this one has {len(token)}); "
                        "e.g. python3 -c 'import secrets; print(secrets.token_urlsafe(24))'")
    token = token or secrets.token_urlsafe(24)
    review = Review(out, cache)
    try:
        server = ThreadingHTTPServer((host, port), make_handler(review, token))
    except OSError as exc:  # a port in use, an address not on this machine
        raise UserError(f"review cannot serve on {host}:{port}: {exc.strerror or exc}") from None
    server.daemon_threads = True
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    return server, f"http://{shown}:{server.server_address[1]}/?token={quote(token)}"
