"""A static gallery page of a run, for people who do not run notebooks.

One self-contained HTML file (thumbnails inlined as data: URIs, no script or style from the
network), so it can be mailed, archived or opened from a USB stick: people largest first with
their faces, the albums each appears in, people seen in several albums, and merge suggestions
side by side.
"""
from __future__ import annotations

import base64
import html
from pathlib import Path

import pandas as pd

from facecluster.core.lock import local_path
from facecluster.viewing.runs import (faces_of_people, load_run, merge_suggestions, people_in_several_albums,
                                     photos_per_year)

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; background: #fafafa; }
h1 { margin-bottom: 4px; } .summary { color: #555; margin-bottom: 20px; }
.person { background: white; border: 1px solid #ddd; border-radius: 6px; padding: 10px; margin: 10px 0; }
.person h3 { margin: 0 0 6px 0; font-size: 15px; } .albums, .years { color: #666; font-size: 12px; }
.faces img { width: 72px; height: 72px; object-fit: cover; margin: 2px; border-radius: 4px; }
table { border-collapse: collapse; background: white; } td, th { border: 1px solid #ddd; padding: 4px 8px; }
.pair { display: flex; gap: 24px; align-items: center; background: white; border: 1px solid #ddd;
        border-radius: 6px; padding: 8px; margin: 8px 0; }
"""


def _img(thumb: bytes, title: str) -> str:
    data = base64.b64encode(bytes(thumb)).decode("ascii")
    return f'<img src="data:image/jpeg;base64,{data}" title="{html.escape(title)}" alt="face">'


def _faces(faces: pd.DataFrame, person: int, limit: int) -> str:
    theirs = faces[faces["person_id"] == person].head(limit)
    return "".join(_img(f.thumb, f"{f.face_id} ({f.album})") for f in theirs.itertuples())


def _years(years: pd.DataFrame, person: int) -> str:
    """'2016 (3), 2019 (1), no date (4)': when the person's photos were taken."""
    if person not in years.index:
        return ""
    counts = years.loc[person]
    return "photos by year: " + ", ".join(f"{html.escape(str(y))} ({int(n)})" for y, n in counts.items() if n)


def _label(person) -> str:
    return html.escape(person.name) if isinstance(person.name, str) else f"person {person.person_id}"


def build_report(out: str | Path, faces_per_person: int = 12, max_people: int = 500) -> str:
    run = load_run(out)
    faces = faces_of_people(run)
    people = run["people"].sort_values(["n_faces", "person_id"], ascending=[False, True])
    noise = int((run["assignments"]["person_id"] == -1).sum())
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>People in {html.escape(str(out))}</title>",
             f"<style>{STYLE}</style></head><body>",
             f"<h1>People in {html.escape(Path(out).name)}</h1>",
             f"<div class='summary'>{len(run['photos'])} photos, {len(run['faces'])} faces, {len(people)} people; "
             f"{noise} faces not grouped (seen once or unsure); "
             f"{int((run['photos']['taken_at_source'] == 'exif').sum())} photos dated by their EXIF</div>"]
    several = people_in_several_albums(run)
    parts.append(f"<h2>People in more than one album ({len(several)})</h2><table><tr><th>person</th><th>faces</th>"
                 "<th>albums</th></tr>")
    for person in several.itertuples():
        parts.append(f"<tr><td>{_label(person)}</td><td>{person.n_faces}</td>"
                     f"<td>{html.escape(', '.join(person.albums))}</td></tr>")
    parts.append("</table>")
    suggestions = merge_suggestions(run, top=20)
    parts.append(f"<h2>Perhaps the same person ({len(suggestions)})</h2>")
    for pair in suggestions.itertuples():
        parts.append(f"<div class='pair'><div><b>person {pair.person_a}</b><div class='faces'>"
                     f"{_faces(faces, pair.person_a, 5)}</div></div><div>distance {pair.distance:.2f}"
                     f"{' · different albums' if pair.cross_album else ''}</div><div><b>person {pair.person_b}</b>"
                     f"<div class='faces'>{_faces(faces, pair.person_b, 5)}</div></div></div>")
    parts.append("<h2>Everyone, most faces first</h2>")
    years = photos_per_year(run)
    for person in people.head(max_people).itertuples():
        parts.append(f"<div class='person' id='person-{person.person_id}'><h3>{_label(person)} · {person.n_faces} faces"
                     f" in {person.n_photos} photos</h3><div class='albums'>{html.escape(', '.join(person.albums))}"
                     f"</div><div class='years'>{_years(years, person.person_id)}</div>"
                     f"<div class='faces'>{_faces(faces, person.person_id, faces_per_person)}</div></div>")
    if len(people) > max_people:
        parts.append(f"<p>... and {len(people) - max_people} more people (see the notebook)</p>")
    # Marks on the page how many thumbnails the browser could decode (checked by the tests in
    # headless Chromium; also a quick health check when a page looks empty).
    parts.append("<script>window.addEventListener('load', () => { const all = document.images; "
                 "const ok = [...all].filter(i => i.complete && i.naturalWidth > 0).length; "
                 "document.body.dataset.imagesLoaded = ok + '/' + all.length; });</script>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(out: str | Path, to: str | Path | None = None) -> Path:
    """OUT/report/index.html unless `to` says otherwise; `forget` deletes OUT/report and writes a
    page elsewhere again (facecluster/output/copies.py)."""
    if to is None and local_path(str(out)) is None:
        raise OSError(f"{out} is not on this machine: say where to write the page with --to")
    path = Path(to) if to else Path(local_path(str(out))) / "report" / "index.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(build_report(out), encoding="utf-8")
    if to:
        from facecluster.output.copies import record

        record(str(out), "reports", {"to": str(path.resolve())})
    return path
