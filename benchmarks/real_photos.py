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

Per set: pairwise and BCubed precision / recall / F on the face each photo is about (the one
nearest its centre), people found for the true people, the share of faces not grouped, the
share of each true person's photos held by their largest found person (min and median), and on
families the found people that mix two members of one family.

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
SETS = ("lfw500", "celebs17", "celebs17dup", "families", "familyphotos", "portraits")
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


def face_labels(faces: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """face_id -> person for labels given by path and tile (familyphotos)."""
    centre = faces["box"].map(lambda b: (b[0] + b[2]) / 2)
    relative = faces["path"].map(lambda p: "/".join(str(p).split("/")[-2:]))
    found = pd.DataFrame({"face_id": faces["face_id"], "path": relative, "x": centre}).merge(labels, on="path")
    found = found[(found["x"] >= found["x0"]) & (found["x"] < found["x1"])]
    return found.drop_duplicates("face_id", keep=False)[["face_id", "person"]]


def facecluster(*args: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "facecluster.cli", *args], check=True, cwd=ROOT,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def score(out: Path, labels: pd.DataFrame, name: str) -> dict:
    faces = pd.read_parquet(out / "faces", columns=["face_id", "photo_id", "path", "box"])
    by_tile = "x0" in labels.columns
    if by_tile:
        labels = face_labels(faces, labels)
        labels.to_csv(out.parent / "face_labels.csv", index=False)  # for benchmarks/clustering_tries.py
    scored = labelled_faces(faces, pd.read_parquet(out / "photo_status"), labels)
    scored = scored.merge(pd.read_parquet(out / "assignments", columns=["face_id", "person_id"]), on="face_id")
    report = cluster_report(scored["person"].tolist(), scored["person_id"].to_numpy())
    grouped = scored[scored["person_id"] >= 0]
    largest = (grouped.groupby("person")["person_id"].agg(lambda p: p.value_counts().iloc[0])
               .reindex(scored["person"].unique()).fillna(0) / scored.groupby("person").size())
    many = scored.groupby("person").size() >= 5  # "each person's largest found person" means people seen often
    report["largest_share_min"] = float(largest[many].min()) if many.any() else float("nan")
    report["largest_share_median"] = float(largest[many].median()) if many.any() else float("nan")
    report["photos"] = int(scored["path"].nunique()) if by_tile else int(labels["path"].nunique())
    report["photos_with_face"] = int(scored["photo_id"].nunique())
    if name in MIXING_SETS:
        family = grouped.assign(family=grouped["person"].str.split("_").str[0])
        members = family.groupby("person_id")["person"].nunique()
        report["people_mixing_relatives"] = int((members > 1).sum())
        report["people_mixing_relatives_share"] = float((members > 1).mean()) if len(members) else 0.0
    return report


def line(name: str, report: dict) -> str:
    pw, bc = report["pairwise"], report["bcubed"]
    text = (f"{name:<12} photos {report['photos']:>5} (face found {report['photos_with_face']:>5}) | "
            f"pairwise P {pw['precision']:.3f} R {pw['recall']:.3f} F {pw['f']:.3f} | "
            f"BCubed P {bc['precision']:.3f} R {bc['recall']:.3f} F {bc['f']:.3f} | "
            f"people {report['people_found']} for {report['people_true']} | not grouped {report['noise_share']:.3f} | "
            f"largest found person holds min {report['largest_share_min']:.2f} median {report['largest_share_median']:.2f}")
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
            root = work / name
            archive, out, labels_file = root / "photos", root / "out", root / "labels.csv"
            if not labels_file.exists():
                shutil.rmtree(root, ignore_errors=True)
                build(name, archive).to_csv(labels_file, index=False)
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
