"""Taking the people to photo managers: XMP sidecars with the Metadata Working Group's face
regions (digiKam, Lightroom, Immich, exiftool read them), where asked the names as IPTC
PersonInImage and dc:subject keywords (what newsroom archives search), and a CSV of every face.

One sidecar per archive file holding a person, named FILE.EXT.xmp, in a folder that mirrors the
archive: originals are never touched, and a sidecar is written beside an original only when
asked. A sidecar already there (another tool's, or a camera's) is edited, never replaced: its
other content is kept (facecluster/output/sidecars.py). MWG regions are given in the photo as
stored: the area (centre x, y and w, h, normalised) and the applied-to dimensions are those of
the pixels before the EXIF orientation turns them upright, as the MWG guidance says;
facecluster's boxes are upright, so each is turned back. A re-export takes out what the last one
put in (listed in the folder's manifest) and puts in what the run says now.
"""
from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from facecluster.core.catalogue import ASSIGNMENTS, FACES, PEOPLE, PHOTO_FILES, PHOTO_STATUS
from facecluster.core.lock import local_path
from facecluster.output.sidecars import Region, SidecarContent, UnreadableSidecar, remove_from_sidecar, write_sidecar

MANIFEST = ".facecluster-export.json"
CSV_NAME = "faces.csv"
CSV_COLUMNS = ["face_id", "person_id", "name", "confidence", "album", "path", "x1", "y1", "x2", "y2",
               "photo_width", "photo_height"]


class ExportError(ValueError):
    pass


def local_file(path: str) -> Path:
    """An archive path as Spark wrote it (file:/a/b.jpg) as a local path."""
    local = local_path(path)
    if local is None:
        raise ExportError(f"{path}: sidecars are written for photos on this machine's file system")
    return Path(local)


def orientation_of(path: Path) -> int:
    """The photo's EXIF orientation (1 when it has none or cannot be read): its header only."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            value = int(image.getexif().get(0x0112, 1))
    except (OSError, ValueError):
        return 1
    return value if 1 <= value <= 8 else 1


def stored_box(box, width: float, height: float, orientation: int) -> tuple[float, float, float, float]:
    """An upright box (x1, y1, x2, y2) of a W x H upright photo, in the photo's stored pixels."""
    x1, y1, x2, y2 = (float(v) for v in box)
    W, H = float(width), float(height)

    def to_stored(x, y):
        return {1: (x, y), 2: (W - x, y), 3: (W - x, H - y), 4: (x, H - y),
                5: (y, x), 6: (y, W - x), 7: (H - y, W - x), 8: (H - y, x)}[orientation]

    corners = np.array([to_stored(x1, y1), to_stored(x2, y2)])
    return (*corners.min(axis=0), *corners.max(axis=0))


def stored_size(width: int, height: int, orientation: int) -> tuple[int, int]:
    return (height, width) if orientation >= 5 else (width, height)


def archive_root(files: pd.DataFrame) -> str:
    """The folder the archive was ingested from, as ingest recorded it (photo_files.root). Runs
    ingested before the root was recorded: each path is ROOT/ALBUM/..., or ROOT/NAME for a photo
    at the root (album ''); the root most paths agree on."""
    if "root" in files.columns and files["root"].notna().any():
        return str(files["root"].dropna().mode().iloc[0])
    votes: dict[str, int] = {}
    for path, album in zip(files["path"], files["album"]):
        if not album:
            candidates = {path.rsplit("/", 1)[0]}
        else:
            marker = f"/{album}/"
            candidates, start = set(), path.find(marker)
            while start >= 0:
                candidates.add(path[:start])
                start = path.find(marker, start + 1)
        for candidate in candidates:
            votes[candidate] = votes.get(candidate, 0) + 1
    if not votes:
        raise ExportError("the run lists no photo files")
    return max(votes, key=lambda root: (votes[root], -len(root)))


def faces_to_export(run: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Every face (those not grouped with person -1) with its person, name, confidence, the
    photo's upright size and every archive path of the photo (one row per face and path)."""
    from facecluster.grouping.clustering import NOISE
    from facecluster.grouping.people import without_hidden

    run = without_hidden(run)  # a hidden person is never exported
    faces = run["faces"].merge(run["assignments"], on="face_id", how="left")
    faces["person_id"] = faces["person_id"].fillna(NOISE).astype(np.int64)
    faces["probability"] = faces["probability"].fillna(0.0)
    faces = faces.merge(run["people"][["person_id", "name"]], on="person_id", how="left")
    faces = faces.merge(run["photo_status"][["photo_id", "width", "height"]], on="photo_id")
    files = run["photo_files"][["photo_id", "path", "album"]]
    return faces.drop(columns=["path", "album"], errors="ignore").merge(files, on="photo_id")


def sidecar_names(faces: pd.DataFrame, unnamed: bool) -> pd.Series:
    """The name each face goes under in sidecars: its person's name; an unnamed person as
    'person N' when asked; nothing for a face not grouped."""
    named = faces["name"].where(faces["name"].notna() & (faces["name"] != ""))
    if unnamed:
        named = named.fillna("person " + faces["person_id"].astype(str))
    return named.where(faces["person_id"] >= 0)


def export_people(run: dict[str, pd.DataFrame], to: str | os.PathLike, beside_originals: bool = False,
                  person_in_image: bool = False, keywords: bool = False, unnamed: bool = False) -> dict:
    """Write the sidecars and faces.csv; what was written and what taken out."""
    target = Path(to).resolve()
    faces = faces_to_export(run)
    root = archive_root(run["photo_files"])
    root_path = local_file(root).resolve() if len(faces) else None
    if root_path is not None and not beside_originals and (target == root_path or root_path in target.parents
                                                           or target in root_path.parents):
        raise ExportError(f"{target} holds or lies inside the archive {root_path}: export to a folder of its own, "
                          "or write the sidecars beside the photos with --beside-originals")
    target.mkdir(parents=True, exist_ok=True)
    manifest_path = target / MANIFEST
    before = json.loads(manifest_path.read_text())["sidecars"] if manifest_path.exists() else {}
    if isinstance(before, list):  # an export from before sidecars were edited in place: each its own file
        before = {path: {"created": True} for path in before}

    faces["sidecar_name"] = sidecar_names(faces, unnamed)
    named = faces[faces["sidecar_name"].notna()]
    sidecars = {}
    for path, _ in named.groupby("path", sort=True):
        original = local_file(path)
        relative = original.resolve().relative_to(root_path)
        sidecars[path] = (original.parent if beside_originals else target / relative.parent) / f"{original.name}.xmp"
        landing = Path(os.path.realpath(sidecars[path].parent))
        if not beside_originals and landing != target and target not in landing.parents:
            # a link inside the export folder (DIR/album -> the archive) would put sidecars elsewhere
            raise ExportError(f"{sidecars[path].parent} leads out of {target} (to {landing}): nothing was written; "
                              "remove the link, or export to a folder of its own")
    written, merged, unreadable = {}, [], []
    for path, photo_faces in named.groupby("path", sort=True):
        original = local_file(path)
        sidecar = sidecars[path]
        if sidecar.exists() and str(sidecar) not in before:
            merged.append(str(sidecar))  # another tool's sidecar: edited, the rest of it kept
        orientation = orientation_of(original)
        first = photo_faces.iloc[0]
        stored_w, stored_h = stored_size(int(first["width"]), int(first["height"]), orientation)
        regions = []
        for face in photo_faces.itertuples():
            x1, y1, x2, y2 = stored_box(face.box, face.width, face.height, orientation)
            x1, x2 = max(0.0, x1), min(float(stored_w), x2)
            y1, y2 = max(0.0, y1), min(float(stored_h), y2)
            regions.append(Region(str(face.sidecar_name), (x1 + x2) / 2 / stored_w, (y1 + y2) / 2 / stored_h,
                                  (x2 - x1) / stored_w, (y2 - y1) / stored_h, str(face.face_id)))
        names = sorted(set(photo_faces["sidecar_name"]))
        content = SidecarContent(regions, stored_w, stored_h, names if person_in_image else [],
                                 names if keywords else [])
        try:
            written[str(sidecar)] = write_sidecar(sidecar, content, before.get(str(sidecar)))
        except UnreadableSidecar as exc:
            unreadable.append(str(exc))
            merged = [m for m in merged if m != str(sidecar)]

    removed = [p for p in sorted(set(before) - set(written)) if Path(p).exists()]
    for path in removed:
        try:
            remove_from_sidecar(Path(path), before[path])
        except UnreadableSidecar as exc:
            unreadable.append(str(exc))

    table = faces.sort_values(["person_id", "path", "face_index"])
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for face in table.itertuples():
        writer.writerow([face.face_id, face.person_id, "" if pd.isna(face.name) else face.name,
                         f"{face.probability:.3f}", face.album, local_path(face.path) or face.path,
                         *(f"{v:.1f}" for v in face.box), int(face.width), int(face.height)])
    (target / CSV_NAME).write_text(buffer.getvalue(), encoding="utf-8")
    manifest_path.write_text(json.dumps({"sidecars": written}, indent=1))
    return {"sidecars": len(written), "removed": len(removed), "merged": merged, "unreadable": unreadable,
            "faces": len(table),
            "named_faces": len(named), "csv": str(target / CSV_NAME)}


# What the export reads of a run: never the photos' bytes nor the embeddings.
EXPORT_COLUMNS = {
    FACES: ["face_id", "photo_id", "face_index", "box"],
    ASSIGNMENTS: ["face_id", "person_id", "probability"],
    PEOPLE: ["person_id", "name", "hidden"],
    PHOTO_STATUS: ["photo_id", "width", "height"],
    PHOTO_FILES: ["photo_id", "path", "album", "root"],
}


def refresh_exports(out: str) -> list[str]:
    """Write every recorded export again from the run as it is now (after a forget: without the
    forgotten photos and faces); the folders that could not be reached, with the reason."""
    from facecluster.output.copies import recorded

    missed = []
    for entry in recorded(out, "exports"):
        folder = Path(entry["to"])
        if not (folder / MANIFEST).exists():
            missed.append(f"{folder}: not on this machine, or not an export any more")
            continue
        try:
            export_run(out, folder, entry["beside_originals"], **entry.get("options", {}))
        except (OSError, KeyError, ExportError) as exc:
            missed.append(f"{folder}: {exc}")
    return missed


def export_run(out: str, to: str | os.PathLike, beside_originals: bool = False, person_in_image: bool = False,
               keywords: bool = False, unnamed: bool = False) -> dict:
    from facecluster.core.run_reader import has_table, read_table

    missing = [table.name for table in EXPORT_COLUMNS if not has_table(out, table)]
    if missing:
        raise ExportError(f"{out} is not a clustered run (no {', '.join(missing)}): run `facecluster run` "
                          "or `facecluster cluster` on it first")
    run = {table.name: read_table(out, table, columns) for table, columns in EXPORT_COLUMNS.items()}
    options = {"person_in_image": person_in_image, "keywords": keywords, "unnamed": unnamed}
    done = export_people(run, to, beside_originals, **options)
    from facecluster.output.copies import record

    record(out, "exports", {"to": str(Path(to).resolve()), "beside_originals": beside_originals, "options": options})
    return done
