"""People found on real photo sets as an archive holds them: each set through the whole job
(`facecluster run`, Spark local mode, dlib), then scored against who is really in each photo.

Sets (from ../shared/data, never copied into the project):
  lfw500       500 LFW photos: the 40 people with most photos (at most 10 each) + 100 seen once
  celebs17     17 actors, about 100 web photos each, taken over decades
  celebs17dup  celebs17 with near-duplicates made from its own photos: for a third of the photos
               two or three variants (resized, cropped a few percent, re-encoded at a lower JPEG
               quality, a burst-like shift of light), as bursts, edits and re-saved copies are
  families     100 members of 28 families, children to parents (tight 224x224 crops)
  familyphotos the same crops put back together: the crops of one source photo side by side in
               one photo (families_group_photos.csv), as the family's archive holds them; each
               face scored by the tile it lies in
  portraits    61 photos of 13 people, full size
  lfwall       every LFW photo of the development split (9,546 photos of 3,952 people, most seen once)
  background   the same photos scored on every face as it comes: the faces in the background of a
               photo are each a person of their own (nobody else's), so a found person made of
               small, blurred or half-hidden strangers shows as mixed
  celebs17collage  celebs17 as archives also hold it: a fifth of the photos put two by two into
               two-panel collages of one actor (panels of unequal size), 20 collages of two
               different actors, and 15 album pages (three or four prints on a page, one actor twice)

Per set: pairwise and BCubed precision / recall / F on the face each photo is about (the one
nearest its centre; in a collage or album page, every face by the panel it lies in), people
found for the true people, the share of faces not grouped, the share of each true person's
photos held by their largest found person (min and median), mixed people (found people of 10 or
more faces in which no true person holds half), and on families the found people that mix two
members of one family.

    .venv/bin/python benchmarks/real_photos.py [--sets celebs17 celebs17dup] [--keep DIR] [--embedder dlib-one-view]

--keep DIR keeps each set's output root (DIR/<set>/out); a later call with the same DIR scores
the kept runs again (add --recluster to cluster them again with the current settings first).
"""
from __future__ import annotations

import argparse
import io
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from facecluster.measuring.evaluation import labelled_faces, lfw_subset  # noqa: E402
from facecluster.measuring.metrics import cluster_report  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
SETS = ("lfw500", "celebs17", "celebs17dup", "families", "familyphotos", "portraits", "lfwall", "background",
        "celebs17collage")
SAME_ARCHIVE = {"background": "lfwall"}  # scored differently on the same run
MIXING_SETS = ("families", "familyphotos")
TILE, MARGIN = 224, 56  # familyphotos: each crop on a grey margin, so the detector sees a whole head


def _album(rng) -> str:
    return f"album_{rng.integers(0, 4)}"


def _place(rows, archive: Path, rng) -> pd.DataFrame:
    """Copy (source, person) photos into 4 random albums; the labels by archive path."""
    labels = []
    for number, (source, person) in enumerate(rows):
        album = archive / _album(rng)
        album.mkdir(parents=True, exist_ok=True)
        target = album / f"{number:05d}{Path(source).suffix.lower()}"
        shutil.copy(source, target)
        labels.append({"path": f"{album.name}/{target.name}", "person": person})
    return pd.DataFrame(labels)


def near_duplicates(photo: Path, rng) -> list[bytes]:
    """Two or three variants of a photo, as an archive collects them."""
    from PIL import Image, ImageEnhance

    image = Image.open(photo).convert("RGB")
    w, h = image.size
    variants = []
    for kind in rng.choice(["resize", "crop", "jpeg", "light"], size=int(rng.integers(2, 4)), replace=False):
        if kind == "resize":
            scale = rng.uniform(0.5, 0.8)
            out = image.resize((max(1, int(w * scale)), max(1, int(h * scale))), Image.BICUBIC)
        elif kind == "crop":
            dx, dy = (rng.uniform(0.02, 0.05, 2) * [w, h]).astype(int)
            out = image.crop((dx, dy, w - dx, h - dy))
        elif kind == "jpeg":
            out = image
        else:
            out = ImageEnhance.Brightness(image).enhance(rng.uniform(0.8, 1.2))
        buffer = io.BytesIO()
        out.save(buffer, "JPEG", quality=int(rng.integers(35, 60)) if kind == "jpeg" else 90)
        variants.append(buffer.getvalue())
    return variants


def build(name: str, archive: Path, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    if name == "lfw500":
        lfw = DATA / "lfw"
        photos = pd.Series({str(p): p.parent.name for p in sorted(lfw.glob("*/*.jpg"))})
        chosen = photos.loc[lfw_subset(photos, n_people=40, per_person=10, n_distractors=100, seed=seed)]
        return _place(chosen.items(), archive, rng)
    if name in ("celebs17", "celebs17dup"):
        rows = [(str(p), p.parent.name) for p in sorted((DATA / "photos" / "celebs17").glob("*/*.jpg"))]
        labels = _place(rows, archive, rng)
        if name == "celebs17dup":
            extra = []
            for row in labels[rng.random(len(labels)) < 1 / 3].itertuples():
                for k, content in enumerate(near_duplicates(archive / row.path, rng)):
                    target = (archive / row.path).with_name(f"{Path(row.path).stem}_v{k}.jpg")
                    target.write_bytes(content)
                    extra.append({"path": f"{Path(row.path).parent.name}/{target.name}", "person": row.person})
            labels = pd.concat([labels, pd.DataFrame(extra)], ignore_index=True)
        return labels
    if name == "families":
        rows = [(str(p), p.parent.name) for p in sorted((DATA / "photos" / "families").glob("*/*.jpg"))]
        return _place(rows, archive, rng)
    if name == "familyphotos":
        return family_photos(archive, rng)
    if name == "lfwall":
        return _place([(str(p), p.parent.name) for p in sorted((DATA / "lfw").glob("*/*.jpg"))], archive, rng)
    if name == "celebs17collage":
        return celebs_collages(archive, rng)
    if name == "portraits":
        table = pd.read_csv(DATA / "photos" / "portraits_labels.csv")
        return _place([(str(DATA / "photos" / f), p) for f, p in zip(table["file"], table["person"])], archive, rng)
    raise ValueError(f"unknown set {name}; one of {', '.join(SETS)}")


def family_photos(archive: Path, rng) -> pd.DataFrame:
    """The family crops of one source photo (P-number) side by side in one JPEG; labels by
    path and tile: x0 <= the face's centre < x1."""
    from PIL import Image

    crops: dict[str, list[Path]] = {}
    for crop in sorted((DATA / "photos" / "families").glob("*/*.jpg")):
        crops.setdefault(crop.name.split("_")[0], []).append(crop)
    labels = []
    for number, (source, members) in enumerate(sorted(crops.items())):
        width = TILE + 2 * MARGIN
        canvas = Image.new("RGB", (width * len(members), width), (128, 128, 128))
        album = archive / _album(rng)
        album.mkdir(parents=True, exist_ok=True)
        target = album / f"{number:05d}_{source}.jpg"
        for k, crop in enumerate(members):
            with Image.open(crop) as image:
                canvas.paste(image.convert("RGB").resize((TILE, TILE)), (k * width + MARGIN, MARGIN))
            labels.append({"path": f"{album.name}/{target.name}", "person": crop.parent.name,
                           "x0": k * width, "x1": (k + 1) * width})
        canvas.save(target, "JPEG", quality=92)
    return pd.DataFrame(labels)


def _panel(image, height: int):
    from PIL import Image

    return image.convert("RGB").resize((max(1, round(image.width * height / image.height)), height), Image.BICUBIC)


def celebs_collages(archive: Path, rng) -> pd.DataFrame:
    """celebs17 with collages: a fifth of each actor's photos paired into two-panel collages of
    that actor (the second panel 55% to 85% of the first's height, as "then and now" pages are
    laid out), 20 collages of two actors, and 15 album pages of three or four prints with one
    actor twice. The photos used in collages and pages are not also kept alone. Labels by path,
    and for collages and pages by panel: x0 <= the face's centre < x1 and y0 <= centre < y1."""
    from PIL import Image

    actors = {p.name: sorted(p.glob("*.jpg")) for p in sorted((DATA / "photos" / "celebs17").iterdir()) if p.is_dir()}
    pool = {a: list(rng.permutation(photos)) for a, photos in actors.items()}
    labels, number = [], 0

    def save(canvas, panels) -> None:
        nonlocal number
        album = archive / _album(rng)
        album.mkdir(parents=True, exist_ok=True)
        target = album / f"c{number:05d}.jpg"
        canvas.save(target, "JPEG", quality=90)
        for person, (x0, y0, x1, y1) in panels:
            labels.append({"path": f"{album.name}/{target.name}", "person": person, "x0": x0, "x1": x1, "y0": y0,
                           "y1": y1})
        number += 1

    def collage(photos) -> None:
        """Panels side by side on white, each scaled to its own height, bottoms aligned."""
        heights = [400] + [int(400 * rng.uniform(0.55, 0.85)) for _ in photos[1:]]
        panels = [_panel(Image.open(photo), h) for (photo, _), h in zip(photos, heights)]
        gap = 24
        canvas = Image.new("RGB", (sum(p.width for p in panels) + gap * (len(panels) + 1), 400 + 2 * gap), "white")
        x, placed = gap, []
        for panel, (_, person) in zip(panels, photos):
            y = gap + 400 - panel.height
            canvas.paste(panel, (x, y))
            placed.append((person, (x, y, x + panel.width, y + panel.height)))
            x += panel.width + gap
        save(canvas, placed)

    for actor, photos in pool.items():
        pairs = len(photos) // 10  # a fifth of the photos, two by two
        for k in range(pairs):
            collage([(photos.pop(), actor), (photos.pop(), actor)])
    names = sorted(pool)
    for _ in range(20):
        a, b = rng.choice(names, size=2, replace=False)
        if pool[a] and pool[b]:
            collage([(pool[a].pop(), a), (pool[b].pop(), b)])
    for _ in range(15):  # an album page: prints in a row on a beige page, one actor twice
        twice, *others = rng.choice(names, size=int(rng.integers(2, 4)), replace=False)
        chosen = [(twice, pool[twice].pop()), (twice, pool[twice].pop())] + [(o, pool[o].pop()) for o in others]
        order = rng.permutation(len(chosen))
        prints = [(_panel(Image.open(chosen[i][1]), int(rng.integers(260, 340))), chosen[i][0]) for i in order]
        gap = 40
        canvas = Image.new("RGB", (sum(p.width for p, _ in prints) + gap * (len(prints) + 1), 420), (226, 214, 186))
        x, placed = gap, []
        for image, person in prints:
            y = int(rng.integers(20, 420 - image.height - 10))
            canvas.paste(image, (x, y))
            placed.append((person, (x, y, x + image.width, y + image.height)))
            x += image.width + gap
        save(canvas, placed)
    single = [(str(p), actor) for actor, photos in pool.items() for p in photos]
    return pd.concat([_place(single, archive, rng), pd.DataFrame(labels)], ignore_index=True)


def face_labels(faces: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """face_id -> person for labels given by path and panel (familyphotos, collages): a face is
    in the panel its centre lies in (y0 and y1 only where given)."""
    labels = labels.dropna(subset=["x0"])
    if "y0" not in labels.columns:
        labels = labels.assign(y0=-np.inf, y1=np.inf)
    labels = labels.assign(y0=labels["y0"].fillna(-np.inf), y1=labels["y1"].fillna(np.inf))
    centre_x = faces["box"].map(lambda b: (b[0] + b[2]) / 2)
    centre_y = faces["box"].map(lambda b: (b[1] + b[3]) / 2)
    relative = faces["path"].map(lambda p: "/".join(str(p).split("/")[-2:]))
    found = pd.DataFrame({"face_id": faces["face_id"], "path": relative, "x": centre_x, "y": centre_y}).merge(
        labels, on="path")
    found = found[(found["x"] >= found["x0"]) & (found["x"] < found["x1"]) & (found["y"] >= found["y0"])
                  & (found["y"] < found["y1"])]
    return found.drop_duplicates("face_id", keep=False)[["face_id", "person"]]


def mixed_people(scored: pd.DataFrame) -> int:
    """Found people of 10 or more faces in which no true person holds half."""
    grouped = scored[scored["person_id"] >= 0]
    sizes = grouped.groupby("person_id").size()
    top = grouped.groupby("person_id")["person"].agg(lambda p: p.value_counts().iloc[0])
    return int(((sizes >= 10) & (top < sizes / 2)).sum())


def facecluster(*args: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "facecluster.cli", *args], check=True, cwd=ROOT,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def scored_faces(out: Path, labels: pd.DataFrame, name: str) -> pd.DataFrame:
    """(face_id, photo_id, person) of the faces a set is scored on: the face each photo is about
    (in a collage or album page, every face by its panel); on `background`, every face, the
    faces nobody labelled each a person of their own."""
    faces = pd.read_parquet(out / "faces", columns=["face_id", "photo_id", "path", "box"])
    status = pd.read_parquet(out / "photo_status")
    if "x0" in labels.columns:
        paneled = labels["x0"].notna()
        scored = faces.merge(face_labels(faces, labels[paneled]), on="face_id")
        if (~paneled).any():  # photos of their own: the face each is about
            alone = labelled_faces(faces, status, labels.loc[~paneled, ["path", "person"]])
            scored = pd.concat([scored, alone[scored.columns]], ignore_index=True)
    else:
        scored = labelled_faces(faces, status, labels)
    columns = ["face_id", "photo_id", "person"]
    scored = scored[columns]
    if name == "background":  # every other face: a person of its own
        others = faces[~faces["face_id"].isin(scored["face_id"])]
        scored = pd.concat([scored, others.assign(person="background:" + others["face_id"])[columns]],
                           ignore_index=True)
    scored.attrs["photos"] = int(labels["path"].nunique())
    return scored


def report(scored: pd.DataFrame, assignments: pd.DataFrame, name: str) -> dict:
    """The set's figures for one clustering: assignments (face_id, person_id)."""
    photos = scored.attrs.get("photos", int(scored["photo_id"].nunique()))
    scored = scored.merge(assignments[["face_id", "person_id"]], on="face_id")
    result = cluster_report(scored["person"].tolist(), scored["person_id"].to_numpy())
    grouped = scored[scored["person_id"] >= 0]
    largest = (grouped.groupby("person")["person_id"].agg(lambda p: p.value_counts().iloc[0])
               .reindex(scored["person"].unique()).fillna(0) / scored.groupby("person").size())
    many = scored.groupby("person").size() >= 5  # "each person's largest found person" means people seen often
    result["largest_share_min"] = float(largest[many].min()) if many.any() else float("nan")
    result["largest_share_median"] = float(largest[many].median()) if many.any() else float("nan")
    result["photos"] = photos
    result["mixed_people"] = mixed_people(scored)
    result["photos_with_face"] = int(scored["photo_id"].nunique())
    if name in MIXING_SETS:
        family = grouped.assign(family=grouped["person"].str.split("_").str[0])
        members = family.groupby("person_id")["person"].nunique()
        result["people_mixing_relatives"] = int((members > 1).sum())
        result["people_mixing_relatives_share"] = float((members > 1).mean()) if len(members) else 0.0
    return result


def score(out: Path, labels: pd.DataFrame, name: str) -> dict:
    return report(scored_faces(out, labels, name), pd.read_parquet(out / "assignments"), name)


def line(name: str, report: dict) -> str:
    pw, bc = report["pairwise"], report["bcubed"]
    text = (f"{name:<12} photos {report['photos']:>5} (face found {report['photos_with_face']:>5}) | "
            f"pairwise P {pw['precision']:.3f} R {pw['recall']:.3f} F {pw['f']:.3f} | "
            f"BCubed P {bc['precision']:.3f} R {bc['recall']:.3f} F {bc['f']:.3f} | "
            f"people {report['people_found']} for {report['people_true']} | not grouped {report['noise_share']:.3f} | "
            f"largest found person holds min {report['largest_share_min']:.2f} median {report['largest_share_median']:.2f}"
            f" | mixed people {report['mixed_people']}")
    if "people_mixing_relatives" in report:
        text += (f" | people mixing relatives {report['people_mixing_relatives']} "
                 f"({report['people_mixing_relatives_share']:.3f})")
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=SETS)
    parser.add_argument("--keep", help="keep (and reuse) each set's archive and output root here")
    parser.add_argument("--recluster", action="store_true", help="cluster kept runs again before scoring")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="settings for the runs (as `facecluster run --set`)")
    parser.add_argument("--embedder", default="dlib", choices=["dlib", "dlib-one-view"])
    args = parser.parse_args()
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="real_photos_"))
    sets_ = [f"--set={o}" for o in args.overrides]
    try:
        for name in args.sets:
            root = work / SAME_ARCHIVE.get(name, name)
            archive, out, labels_file = root / "photos", root / "out", root / "labels.csv"
            if not labels_file.exists():
                shutil.rmtree(root, ignore_errors=True)
                build(SAME_ARCHIVE.get(name, name), archive).to_csv(labels_file, index=False)
            labels = pd.read_csv(labels_file)
            if not (out / "people").exists():
                seconds = facecluster("run", str(archive), "--out", str(out), "--embedder", args.embedder, *sets_)
                print(f"# {name}: run in {seconds:.0f} s", flush=True)
            elif args.recluster:
                seconds = facecluster("cluster", "--out", str(out), "--set", "cluster.mode=full", *sets_)
                print(f"# {name}: clustered again in {seconds:.0f} s", flush=True)
            print(line(name, score(out, labels, name)), flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
