"""What `facecluster review` shows: the people of a run as the label log will leave them.

The run's tables say who is who as the last `cluster` left it; the lines of OUT/labels.csv that
no cluster run has applied yet are laid over them here, so every action shows at once and the
next `cluster` makes it permanent. Nothing is held per face but numbers: at a million faces the
page reads the face ids, photos, albums, people and probabilities (tens of MB), and takes each
thumbnail and embedding from a local copy (`FaceStore`), never the photos' bytes.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from facecluster.core.catalogue import ASSIGNMENTS, FACES, PEOPLE
from facecluster.grouping.clustering import NOISE

NOT_A_FACE = -2  # a face labelled "not a face": on no page


def _fingerprint(out: str, table) -> str:
    """Names, sizes and times of a table's files: changes whenever a job rewrites the table."""
    from pyarrow import fs

    from facecluster.core.run_reader import filesystem_of

    filesystem, base = filesystem_of(out)
    infos = filesystem.get_file_info(fs.FileSelector(f"{base}/{table.name}", recursive=True))
    listing = sorted((i.path, i.size, i.mtime_ns) for i in infos if i.type == fs.FileType.File)
    return hashlib.sha1(json.dumps(listing).encode()).hexdigest()[:16]


class FaceStore:
    """Each face's thumbnail and embedding, copied once per version of the faces table into a
    local cache (one file of thumbnails with their offsets, one float32 matrix): a page then
    reads 60 thumbnails by offset instead of decoding Parquet row groups that hold tens of
    thousands of faces each. Built by streaming the table, so memory stays flat."""

    def __init__(self, out: str, cache: Path | None = None):
        from facecluster.core.run_reader import run_cache_folder

        key = _fingerprint(out, FACES)
        run_folder = run_cache_folder(out, cache)
        self.folder = run_folder / key
        if not (self.folder / "done").exists() or not (self.folder / "boxes.npy").exists():
            self._build(out, run_folder)
        faces = pd.read_parquet(self.folder / "faces.parquet")
        self.face_ids = faces["face_id"].to_numpy()
        self.photo_ids = faces["photo_id"].to_numpy()
        self.albums = faces["album"].astype("category")
        self.row_of = pd.Index(self.face_ids)
        self.offsets = np.load(self.folder / "offsets.npy")
        self.embeddings = np.load(self.folder / "embeddings.npy", mmap_mode="r")
        self.boxes = np.load(self.folder / "boxes.npy")  # x1, y1, x2, y2 in the upright photo's pixels
        self._by_photo = None
        self._thumbs = os.open(self.folder / "thumbs.bin", os.O_RDONLY)

    def _build(self, out: str, run_folder: Path) -> None:
        import shutil

        import pyarrow as pa
        import pyarrow.dataset as ds
        import pyarrow.parquet as pq

        from facecluster.core.run_reader import filesystem_of

        filesystem, base = filesystem_of(out)
        dataset = ds.dataset(f"{base}/{FACES.name}", filesystem=filesystem, format="parquet", partitioning="hive")
        if run_folder.exists():  # an older copy of this run's faces: replaced
            shutil.rmtree(run_folder, ignore_errors=True)
        run_folder.mkdir(parents=True, exist_ok=True)
        building = Path(tempfile.mkdtemp(prefix="building-", dir=run_folder))
        count = dataset.count_rows()
        first = next(iter(dataset.to_batches(columns=["embedding"], batch_size=1)), None)
        dimension = len(first.column("embedding")[0]) if first is not None and first.num_rows else 0
        vectors = np.lib.format.open_memmap(building / "embeddings.npy", mode="w+", dtype=np.float32,
                                            shape=(count, dimension))
        boxes = np.lib.format.open_memmap(building / "boxes.npy", mode="w+", dtype=np.float32, shape=(count, 4))
        offsets, metadata, done = [0], [], 0
        with open(building / "thumbs.bin", "wb") as thumbs:
            for batch in dataset.to_batches(columns=["face_id", "photo_id", "album", "thumb", "embedding", "box"],
                                            batch_size=16384, batch_readahead=2, fragment_readahead=1):
                if not batch.num_rows:
                    continue
                data = [bytes(t) if t is not None else b"" for t in batch.column("thumb").to_pylist()]
                thumbs.write(b"".join(data))
                offsets.extend((offsets[-1] + np.cumsum([len(t) for t in data])).tolist())
                flat = batch.column("embedding").flatten().to_numpy(zero_copy_only=False)
                vectors[done:done + batch.num_rows] = flat.reshape(batch.num_rows, dimension)
                boxes[done:done + batch.num_rows] = batch.column("box").flatten().to_numpy(
                    zero_copy_only=False).reshape(batch.num_rows, 4)
                done += batch.num_rows
                metadata.append(pa.Table.from_batches([batch.select(["face_id", "photo_id", "album"])]))
        vectors.flush()
        boxes.flush()
        del vectors, boxes
        np.save(building / "offsets.npy", np.asarray(offsets, dtype=np.int64))
        table = pa.concat_tables(metadata) if metadata else pa.table({"face_id": [], "photo_id": [], "album": []})
        pq.write_table(table, building / "faces.parquet")
        (building / "done").write_text("")
        building.rename(self.folder)

    def rows_of_photo(self, photo_id: str) -> np.ndarray:
        return self.rows_of_photos(np.array([photo_id], dtype=object))

    def rows_of_photos(self, photo_ids: np.ndarray) -> np.ndarray:
        """The face rows of these photos: the photos numbered and the faces sorted by them once,
        then each photo's faces are one slice (a person of 30,000 photos finds the faces beside
        theirs in one pass of whole numbers, not 30,000 searches among strings)."""
        if self._by_photo is None:
            codes, photos = pd.factorize(self.photo_ids)
            order = np.argsort(codes, kind="stable")
            starts = np.r_[0, np.cumsum(np.bincount(codes, minlength=len(photos)))]
            self._by_photo = (pd.Index(photos), order, starts)
        photos, order, starts = self._by_photo
        wanted = photos.get_indexer(photo_ids)
        wanted = wanted[wanted >= 0]
        first, counts = starts[wanted], starts[wanted + 1] - starts[wanted]
        if not counts.sum():
            return np.zeros(0, np.int64)
        offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        return order[np.repeat(first, counts) + offsets]

    def thumb(self, row: int) -> bytes:
        start, end = int(self.offsets[row]), int(self.offsets[row + 1])
        return os.pread(self._thumbs, end - start, start)

    def close(self) -> None:
        os.close(self._thumbs)


@dataclass
class PersonView:
    person_id: int
    name: str | None
    n_faces: int
    new: bool = False  # made by a label not applied yet: numbered at the next cluster
    rows: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # face rows, most probable first

    @property
    def title(self) -> str:
        if self.name:
            return self.name
        return "new person" if self.new else f"person {self.person_id}"


@dataclass
class PhotoView:
    photo_id: str
    album: str
    albums: list[str]
    path: str
    taken_at: pd.Timestamp | None
    taken_at_source: str | None  # exif, or file: the file's time, not when the photo was taken
    taken_at_offset: str | None
    width: int
    height: int
    rows: np.ndarray  # its faces' rows

    @property
    def when(self) -> str:
        if self.taken_at is None:
            return "no date"
        if self.taken_at_source == "exif":
            return f"taken {self.taken_at:%Y-%m-%d %H:%M}" + (f" ({self.taken_at_offset})" if self.taken_at_offset else "")
        return f"no date in the photo; file written {self.taken_at:%Y-%m-%d}"


class ReviewState:
    """The run's people with the pending labels laid over them."""

    def __init__(self, out: str, store: FaceStore):
        from facecluster.core.run_reader import read_table

        self.out, self.store = out, store
        self._assignments_key = _fingerprint(out, ASSIGNMENTS)
        assignments = read_table(out, ASSIGNMENTS, ["face_id", "person_id", "probability"])
        people = read_table(out, PEOPLE, ["person_id", "name", "centroid", "hidden", "exemplar_face_id"])
        rows = store.row_of.get_indexer(assignments["face_id"])
        known = rows >= 0
        self.run_person = np.full(len(store.face_ids), NOISE, dtype=np.int64)
        self.run_person[rows[known]] = assignments["person_id"].to_numpy()[known]
        self.probability = np.zeros(len(store.face_ids))
        self.probability[rows[known]] = assignments["probability"].to_numpy()[known]
        self.run_assignments = pd.DataFrame({"face_id": store.face_ids, "person_id": self.run_person})
        hidden = people["hidden"].astype(bool).to_numpy()
        self.run_hidden = set(people.loc[hidden, "person_id"].astype(int))
        self.run_names = {int(p): n for p, n in zip(people["person_id"], people["name"]) if isinstance(n, str) and n}
        self.run_covers = [r for r in store.row_of.get_indexer(people["exemplar_face_id"].dropna()) if r >= 0]
        visible = people[~hidden]
        self.centroid_ids = visible["person_id"].astype(int).to_numpy()
        self.centroids = (np.stack(visible["centroid"].to_numpy()).astype(np.float32) if len(visible)
                          else np.zeros((0, store.embeddings.shape[1] if store.embeddings.ndim == 2 else 0), np.float32))
        self.pending = pd.DataFrame()
        self._albums = None
        self._details = None
        self._suggest = None
        self.refresh()

    def stale(self) -> bool:
        """A cluster or forget rewrote the run since this was read."""
        return _fingerprint(self.out, ASSIGNMENTS) != self._assignments_key

    def refresh(self) -> None:
        """Lay the pending label lines over the run again (after an action or an undo)."""
        from facecluster.curation.labels import applied_lines, faces_of_line, read_label_log

        local = self.local_out
        log = read_label_log(local) if local else pd.DataFrame()
        self.pending = log.iloc[applied_lines(self.out):].reset_index(drop=True) if len(log) else log
        person = self.run_person.copy()
        names, hidden, new_people = dict(self.run_names), set(self.run_hidden), set()
        next_new = int(max(person.max(initial=NOISE), max(self.run_names, default=NOISE),
                           max(self.run_hidden, default=NOISE))) + 1
        row_of = self.store.row_of
        covers = list(self.run_covers)  # each person's picture: the first of their faces shown
        for line in self.pending.itertuples(index=False):
            if line.action == "name":
                names[int(line.person_id)] = line.name
            elif line.action == "merge":
                person[person == int(line.other_person_id)] = int(line.person_id)
                if int(line.person_id) not in names and int(line.other_person_id) in names:
                    names[int(line.person_id)] = names[int(line.other_person_id)]
            elif line.action == "hide":
                hidden.add(int(line.person_id))
            elif line.action == "cover":
                covers.extend(r for r in row_of.get_indexer(faces_of_line(line.face_id))[:1] if r >= 0)
            elif line.action in ("move_out", "not_a_face", "assign"):
                rows = row_of.get_indexer(faces_of_line(line.face_id))
                rows = rows[rows >= 0]
                if line.action == "move_out":
                    person[rows] = NOISE
                elif line.action == "not_a_face":
                    person[rows] = NOT_A_FACE
                elif pd.isna(line.person_id):  # one new person holding every face of the line
                    person[rows] = next_new
                    new_people.add(next_new)
                    if isinstance(line.name, str) and line.name:
                        names[next_new] = line.name
                    next_new += 1
                else:
                    person[rows] = int(line.person_id)
        for gone in hidden:
            person[person == gone] = NOT_A_FACE
        self.person_of, self.names, self.new_people = person, names, new_people
        # Faces by person, most probable first: one sort, then each person is a slice.
        chosen = np.zeros(len(person), dtype=np.int64)
        for rank, row in enumerate(covers, start=1):  # a later choice goes before an earlier one
            chosen[row] = rank
        order = np.lexsort((-self.probability, -chosen, person))
        sorted_people = person[order]
        self._order = order
        ids, starts, counts = np.unique(sorted_people, return_index=True, return_counts=True)
        self._slices = {int(p): (int(s), int(s + c)) for p, s, c in zip(ids, starts, counts)}
        grouped = ids >= 0
        ranking = pd.DataFrame({"person_id": ids[grouped], "n_faces": counts[grouped]})
        self.ranking = ranking.sort_values(["n_faces", "person_id"], ascending=[False, True]).reset_index(drop=True)
        self._centroid_shown = np.isin(self.centroid_ids, ids[grouped])

    @property
    def local_out(self) -> str | None:
        from facecluster.core.lock import local_path

        return local_path(str(self.out))

    def face_rows(self, person_id: int) -> np.ndarray:
        start, end = self._slices.get(person_id, (0, 0))
        return self._order[start:end]

    def person(self, person_id: int) -> PersonView | None:
        rows = self.face_rows(person_id)
        if person_id < 0 or not len(rows):
            return None
        return PersonView(person_id, self.names.get(person_id), len(rows), person_id in self.new_people, rows)

    def people_page(self, page: int, per_page: int, query: str = "") -> tuple[list[PersonView], int]:
        """People largest first (or those whose name holds `query`, or whose id it is); and how many."""
        ranking = self.ranking
        if query:
            wanted = query.strip().lower()
            named = [p for p, n in self.names.items() if isinstance(n, str) and wanted in n.lower()]
            if wanted.lstrip("#").isdigit():
                named.append(int(wanted.lstrip("#")))
            ranking = ranking[ranking["person_id"].isin(named)]
        chosen = ranking.iloc[page * per_page:(page + 1) * per_page]
        return [self.person(int(p)) for p in chosen["person_id"]], len(ranking)

    def not_grouped_page(self, page: int, per_page: int) -> tuple[np.ndarray, int]:
        rows = self.face_rows(NOISE)
        return rows[page * per_page:(page + 1) * per_page], len(rows)

    def nearest_people(self, vectors: np.ndarray, count: int = 1, exclude: int | None = None
                       ) -> tuple[np.ndarray, np.ndarray]:
        """(person ids, distances) of the people whose centroids lie nearest each vector, among
        the people still on the pages."""
        if not len(self.centroids):
            return np.zeros((len(vectors), 0), np.int64), np.zeros((len(vectors), 0))
        vectors = np.asarray(vectors, dtype=np.float32)
        squared = ((vectors ** 2).sum(1)[:, None] - 2 * vectors @ self.centroids.T
                   + (self.centroids ** 2).sum(1)[None, :])
        shown = self._centroid_shown & (self.centroid_ids != exclude)
        squared[:, ~shown] = np.inf
        take = min(count, int(shown.sum()))
        if take == 0:
            return np.zeros((len(vectors), 0), np.int64), np.zeros((len(vectors), 0))
        nearest = np.argpartition(squared, take - 1, axis=1)[:, :take]  # not a full sort of 100,000 people
        nearest = np.take_along_axis(nearest, np.argsort(np.take_along_axis(squared, nearest, 1), axis=1), 1)
        return self.centroid_ids[nearest], np.sqrt(np.maximum(np.take_along_axis(squared, nearest, 1), 0))

    def shares_a_photo(self, person_a: int, person_b: int) -> bool:
        photos = self.store.photo_ids
        return bool(set(photos[self.face_rows(person_a)]) & set(photos[self.face_rows(person_b)]))

    def albums_of(self, person_id: int) -> list[tuple[str, int]]:
        """(album, faces there), most first: a photo copied into two albums counts in both, as in
        the person_albums table."""
        photos = pd.Series(self.store.photo_ids[self.face_rows(person_id)], name="photo_id")
        albums = photos.to_frame().merge(self._photo_albums(), on="photo_id")["album"].value_counts()
        return [(str(a), int(n)) for a, n in albums.items() if n]

    @property
    def suggest_merge(self) -> float:
        """The centroid distance under which two people are suggested as perhaps one: the same
        as the report's and the notebook's merge suggestions (facecluster/recognition/thresholds.py)."""
        if self._suggest is None:
            from facecluster.core.run_reader import run_models
            from facecluster.recognition.thresholds import distances

            models = run_models(self.out)
            self._suggest = distances(models[0], np.asarray(self.store.embeddings), self.store.photo_ids).suggest_merge \
                if models else 0.0
        return self._suggest

    def photo(self, photo_id: str) -> "PhotoView | None":
        details = self.photo_details()
        if photo_id not in details.index:
            return None
        row = details.loc[photo_id]
        taken = row["taken_at"]
        return PhotoView(photo_id, str(row["album"]), [str(a) for a in row["albums"]], str(row["path"]),
                         None if pd.isna(taken) else pd.Timestamp(taken), row["taken_at_source"],
                         row["taken_at_offset"], int(row["width"]) if not pd.isna(row["width"]) else 0,
                         int(row["height"]) if not pd.isna(row["height"]) else 0,
                         self.store.rows_of_photo(photo_id))

    def photo_details(self) -> pd.DataFrame:
        """Per photo (index photo_id): album, albums, path, taken_at (and its source and offset),
        width and height as embedded (upright). Read once; never the photos' bytes."""
        if self._details is None:
            from facecluster.core.catalogue import PHOTO_STATUS, PHOTOS
            from facecluster.core.run_reader import read_table

            photos = read_table(self.out, PHOTOS, ["photo_id", "album", "albums", "path", "taken_at",
                                                   "taken_at_offset", "taken_at_source"])
            sizes = read_table(self.out, PHOTO_STATUS, ["photo_id", "width", "height"])
            self._details = photos.merge(sizes, on="photo_id", how="left").drop_duplicates("photo_id").set_index("photo_id")
        return self._details

    def years_of(self, person_id: int) -> list[tuple[str, int]]:
        """(year, photos of the person taken then), oldest first; photos without a date last, as
        'no date'. A date from the file's time (no EXIF) says when the file was written, not
        when the photo was taken, so it is counted apart."""
        photos = pd.unique(self.store.photo_ids[self.face_rows(person_id)])
        details = self.photo_details().reindex(photos)
        from_exif = details["taken_at_source"] == "exif"
        years = pd.to_datetime(details.loc[from_exif, "taken_at"]).dt.year.value_counts().sort_index()
        counted = [(str(int(y)), int(n)) for y, n in years.items()]
        undated = int((~from_exif).sum())
        return counted + ([("no date", undated)] if undated else [])

    def together_with(self, person_id: int, count: int = 12) -> list[tuple[int, int]]:
        """(person, photos shared) for the people most often in one photo with this person."""
        photos = pd.unique(self.store.photo_ids[self.face_rows(person_id)])
        rows = self.store.rows_of_photos(np.asarray(photos, dtype=object))
        shared = pd.DataFrame({"photo": self.store.photo_ids[rows], "person": self.person_of[rows]})
        shared = shared[(shared["person"] >= 0) & (shared["person"] != person_id)].drop_duplicates()
        counts = shared["person"].value_counts().head(count)
        return [(int(p), int(n)) for p, n in counts.items()]

    def photos_with(self, person_a: int, person_b: int) -> list[str]:
        """The photos that hold both people, the newest first where dated."""
        photos = self.store.photo_ids
        both = set(photos[self.face_rows(person_a)]) & set(photos[self.face_rows(person_b)])
        details = self.photo_details().reindex(sorted(both))
        return list(details.sort_values("taken_at", ascending=False, na_position="last").index)

    def photo_content(self, photo_id: str) -> bytes | None:
        """One photo's bytes from the run's photos table (the row group holding it: the table is
        sorted by photo_id), never the whole table."""
        import pyarrow.compute as pc
        import pyarrow.dataset as ds

        from facecluster.core.catalogue import PHOTOS
        from facecluster.core.run_reader import filesystem_of

        filesystem, base = filesystem_of(self.out)
        dataset = ds.dataset(f"{base}/{PHOTOS.name}", filesystem=filesystem, format="parquet", partitioning="hive")
        found = dataset.to_table(columns=["content"], filter=pc.field("photo_id") == photo_id)
        return bytes(found.column("content")[0].as_py() or b"") if found.num_rows else None

    def _photo_albums(self) -> pd.DataFrame:
        """photo_id, album: one row per album a photo is in (read once, never the photos' bytes)."""
        if self._albums is None:
            from facecluster.core.catalogue import PHOTOS
            from facecluster.core.run_reader import read_table

            photos = read_table(self.out, PHOTOS, ["photo_id", "albums"])
            self._albums = photos.explode("albums").rename(columns={"albums": "album"}).dropna()
        return self._albums
