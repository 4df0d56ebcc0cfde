"""How quick `facecluster review` is on a large run: 100,000 people and 1,000,000 faces.

Writes a synthetic run (facecluster.measuring.synthetic's embeddings; thumbnails cut from the
sample archive's photos, 96 px JPEGs as the embed job keeps them; the faces table in several
Parquet files as Spark writes it), starts the review server on it and times, side by side in
one process: the start (the first, which copies thumbnails and embeddings to the local cache,
and a second with the cache), each page's HTML, a page with its thumbnails (fetched six at a
time, as a browser does), and an action (its label written and the people laid over again).
Medians of --repeat tries.

    .venv/bin/python benchmarks/review_pages.py --faces 1000000 --people 100000
"""
from __future__ import annotations

import argparse
import io
import re
import resource
import shutil
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def thumbnails(count: int = 400, size: int = 96) -> list[bytes]:
    """Face-sized JPEG tiles cut from the sample archive's photos."""
    from PIL import Image

    tiles = []
    photos = sorted((ROOT / "samples" / "archive").rglob("*.jpg"))
    rng = np.random.default_rng(0)
    while len(tiles) < count:
        with Image.open(photos[len(tiles) % len(photos)]) as image:
            image = image.convert("RGB")
            side = int(min(image.size) * rng.uniform(0.15, 0.3))
            x, y = rng.integers(0, image.width - side), rng.integers(0, image.height - side)
            tile = image.crop((x, y, x + side, y + side)).resize((size, size))
            buffer = io.BytesIO()
            tile.save(buffer, "JPEG", quality=85)
            tiles.append(buffer.getvalue())
    return tiles


def write_run(out: Path, n_faces: int, n_people: int, files: int = 8) -> dict:
    """faces, assignments and people tables of a synthetic run; returns its shape."""
    from facecluster.grouping.people import people_table
    from facecluster.measuring.synthetic import FaceSpace, archive_sizes, generate

    rng = np.random.default_rng(0)
    sizes = archive_sizes(n_people, largest=30_000)
    grouped = int(n_faces * 0.7)
    sizes = np.maximum(2, np.round(sizes * grouped / sizes.sum())).astype(np.int64)
    sizes = np.r_[sizes, np.ones(max(0, n_faces - int(sizes.sum())), dtype=np.int64)]  # the rest: seen once
    X, labels = generate(int(sizes.sum()), FaceSpace(), sizes=sizes)
    person = np.where(sizes[labels] >= 2, labels, -1)
    n = len(X)
    face_ids = np.array([f"{i:064x}:0" for i in rng.permutation(n)])
    photo_ids = np.array([f[:-2] for f in face_ids])
    albums = np.array([f"{1970 + (i % 50)}_album" for i in range(n)])
    tiles = thumbnails()
    table = pa.table({
        "face_id": face_ids, "photo_id": photo_ids, "album": albums,
        "path": pa.array([f"file:/archive/{a}/{p[:12]}.jpg" for a, p in zip(albums, photo_ids)]),
        "face_px": np.full(n, 120.0),
        "embedding": pa.FixedSizeListArray.from_arrays(pa.array(X.ravel()), X.shape[1]).cast(pa.list_(pa.float32())),
        "model": pa.array(["dlib-resnet-v1"] * n),
        "thumb": pa.array([tiles[i % len(tiles)] for i in range(n)], pa.binary()),
        "box": pa.array([[40.0, 30.0, 140.0, 150.0]] * n, pa.list_(pa.float32())),
    })
    (out / "faces").mkdir(parents=True)
    step = -(-n // files)
    for part in range(files):
        # No dictionary: real thumbnails are all different, so the table is as large as a real one.
        pq.write_table(table.slice(part * step, step), out / "faces" / f"part-{part:05d}.parquet",
                       row_group_size=32_768, use_dictionary=False)
    # One photo per face, its bytes a small JPEG; sorted by photo_id in row groups as the ingest
    # job writes them, so that a photo page reads the one row group holding its photo.
    order = np.argsort(photo_ids)
    taken = pd.to_datetime("1975-01-01") + pd.to_timedelta(rng.integers(0, 50 * 365, n), unit="D")
    photos = pa.table({"photo_id": photo_ids[order], "album": albums[order],
                       "path": table.column("path").take(pa.array(order)),
                       "albums": pa.array([[a] for a in albums[order]]),
                       "content": pa.array([tiles[i % len(tiles)] for i in order], pa.binary()),
                       "taken_at": pa.array(taken[order].to_numpy(), pa.timestamp("us")),
                       "taken_at_offset": pa.array([None] * n, pa.string()),
                       "taken_at_source": pa.array(["exif"] * n)})
    (out / "photos" / "batch=1").mkdir(parents=True)
    step_photos = -(-n // files)
    for part in range(files):
        pq.write_table(photos.slice(part * step_photos, step_photos),
                       out / "photos" / "batch=1" / f"part-{part:05d}.parquet", row_group_size=4096, use_dictionary=False)
    (out / "photo_status").mkdir()
    pq.write_table(pa.table({"photo_id": photo_ids, "status": ["ok"] * n, "width": np.full(n, 96, np.int32),
                             "height": np.full(n, 96, np.int32)}), out / "photo_status" / "part-00000.parquet")
    probability = rng.uniform(0.5, 1.0, n)
    pq.write_table(pa.table({"face_id": face_ids, "person_id": person.astype(np.int64), "probability": probability,
                             "clustered": np.ones(n, bool)}), out / "assignments.parquet")
    (out / "assignments").mkdir()
    shutil.move(out / "assignments.parquet", out / "assignments" / "part-00000.parquet")
    meta = pd.DataFrame({"face_id": face_ids, "photo_id": photo_ids, "albums": [[a] for a in albums]})
    people = people_table(meta, X, person)
    (out / "people").mkdir()
    people.to_parquet(out / "people" / "part-00000.parquet")
    largest = int(people.sort_values("n_faces").iloc[-1]["person_id"])
    return {"faces": n, "people": len(people), "not_grouped": int((person < 0).sum()),
            "largest_person": largest, "largest_faces": int(people["n_faces"].max()),
            "parquet_mb": sum(p.stat().st_size for p in out.rglob("*.parquet")) / 1e6}


def timed(action, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return times


def page_with_thumbnails(base: str, path: str, cookie: str, pool: ThreadPoolExecutor) -> int:
    request = urllib.request.Request(base + path, headers={"X-Review-Token": cookie})
    page = fetch_request(request)
    if not path.startswith("/photo/") and path.startswith("/photo-"):  # an image, not a page
        return 0
    thumbs = re.findall(r"src='(/(?:thumb|photo-image)/[^']+)'", page.decode())  # the whole photo too
    list(pool.map(lambda t: fetch_request(urllib.request.Request(base + t, headers={"X-Review-Token": cookie})), thumbs))
    return len(thumbs)


def fetch_request(request) -> bytes:
    with urllib.request.urlopen(request) as answer:
        return answer.read()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faces", type=int, default=1_000_000)
    parser.add_argument("--people", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--keep", help="write the run here and keep it (default: a temporary folder)")
    args = parser.parse_args()

    from facecluster.curation.labels import read_label_log
    from facecluster.viewing.review_server import start_review

    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="review-bench-"))
    out, cache = work / "out", work / "cache"
    start = time.perf_counter()
    if not (out / "people").exists():  # in a process of its own: the peak memory below is the review's
        import multiprocessing

        with multiprocessing.get_context("spawn").Pool(1) as pool:
            shape = pool.apply(write_run, (out, args.faces, args.people))
        print(f"synthetic run: {shape} written in {time.perf_counter() - start:.0f} s", flush=True)
    shutil.rmtree(cache, ignore_errors=True)

    starts = {}
    for which in ("first start (builds the local cache)", "start with the cache"):
        began = time.perf_counter()
        server, address = start_review(str(out), cache=cache)
        starts[which] = time.perf_counter() - began
        if which.startswith("first"):
            server.server_close()
    rss_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    with open("/proc/self/status") as status:
        held_gb = next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1e6
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base, token = address.split("/?token=")
    cookie = token  # sent as the X-Review-Token header, as the page's own requests do
    people = pd.read_parquet(out / "people", columns=["person_id", "n_faces"]).sort_values("n_faces")
    largest, small = int(people.iloc[-1]["person_id"]), int(people.iloc[len(people) // 2]["person_id"])
    people_pages = -(-len(people) // 50)
    noise = int((pd.read_parquet(out / "assignments", columns=["person_id"])["person_id"] < 0).sum())
    noise_pages = -(-noise // 60)
    faces = pd.read_parquet(out / "faces", columns=["photo_id"])
    photo = faces["photo_id"].iloc[len(faces) // 2]
    pages = {
        "people, page 1": "/",
        f"people, page {people_pages // 2:,} (of {people_pages:,})": f"/?page={people_pages // 2 - 1}",
        "people, found by name": "/?q=%23" + str(small),
        f"the largest person ({int(people.iloc[-1]['n_faces'])} faces), page 1": f"/person/{largest}",
        "the largest person, page 100": f"/person/{largest}?page=99",
        f"a person of {int(people.iloc[len(people) // 2]['n_faces'])} faces": f"/person/{small}",
        "a photo's page (its faces boxed, where and when; the photo)": f"/photo/{photo}",
        "the photo alone (read from the photos table, scaled)": f"/photo-image/{photo}",
        "not grouped, page 1": "/not-grouped",
        f"not grouped, page {noise_pages:,} (the last)": f"/not-grouped?page={noise_pages - 1}",
    }
    print(f"\n{args.faces:,} faces, {len(people):,} people; medians of {args.repeat}\n")
    for which, seconds in starts.items():
        print(f"{which:58s} {seconds:8.2f} s")
    print(f"{'peak memory of the review process (both starts)':58s} {rss_gb:8.2f} GB")
    print(f"{'memory held while serving':58s} {held_gb:8.2f} GB")
    began = time.perf_counter()  # the first photo page reads every photo's place, date and size once
    fetch_request(urllib.request.Request(base + f"/photo/{faces['photo_id'].iloc[0]}", headers={"X-Review-Token": cookie}))
    print(f"{'the first photo page (every photo place and date read)':58s} {(time.perf_counter() - began) * 1000:8.0f} ms")
    with ThreadPoolExecutor(6) as pool:
        for title, path in pages.items():
            html = timed(lambda: fetch_request(urllib.request.Request(base + path, headers={"X-Review-Token": cookie})),
                         args.repeat)
            counted = []
            full = timed(lambda: counted.append(page_with_thumbnails(base, path, cookie, pool)), args.repeat)
            print(f"{title:58s} {statistics.median(html) * 1000:8.0f} ms page, "
                  f"{statistics.median(full) * 1000:6.0f} ms with its {counted[0]} thumbnails")

    def act(body: bytes, path: str = "/api/label"):
        request = urllib.request.Request(base + path, data=body, method="POST",
                                         headers={"X-Review-Token": cookie, "Content-Type": "application/json"})
        fetch_request(request)

    rename = timed(lambda: act(b'{"action": "name", "person_id": %d, "name": "Someone"}' % small), args.repeat)
    undo = timed(lambda: act(b"{}", "/api/undo"), args.repeat)
    merge = timed(lambda: (act(b'{"action": "merge", "person_id": %d, "other_person_id": %d}'
                               % (largest, int(people.iloc[-2]["person_id"]))), act(b"{}", "/api/undo")), 1)
    print(f"{'an action: rename (label written, people laid over again)':58s} {statistics.median(rename) * 1000:8.0f} ms")
    print(f"{'undo':58s} {statistics.median(undo) * 1000:8.0f} ms")
    print(f"{'merge the two largest people, then undo':58s} {merge[0] * 1000:8.0f} ms")
    assert len(read_label_log(str(out))) == 0, "every action was undone"
    server.shutdown()
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
