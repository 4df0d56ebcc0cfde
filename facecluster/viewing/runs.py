"""Looking at a finished run: tables as pandas, face grids, the person x album matrix.

Used by notebooks/; reads the Parquet tables directly (no Spark needed to look at a run).
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd

from facecluster.core.catalogue import ASSIGNMENTS, FACES, PEOPLE, PERSON_ALBUMS, PHOTO_STATUS, PHOTOS


# What looking at a run reads: the columns the notebook, the report and the functions below use.
# Never the photos' bytes (the archive itself: gigabytes) nor the faces' landmarks.
VIEW_COLUMNS = {
    PHOTOS: ["photo_id", "album", "path", "albums", "taken_at", "taken_at_source"],
    PHOTO_STATUS: ["photo_id", "status", "error", "n_faces"],
    FACES: ["face_id", "photo_id", "album", "path", "face_px", "embedding", "model", "thumb"],
    ASSIGNMENTS: ["face_id", "person_id", "probability", "clustered"],
    PEOPLE: ["person_id", "name", "n_faces", "n_photos", "albums", "n_albums", "exemplar_face_id", "centroid",
             "hidden"],
    PERSON_ALBUMS: ["person_id", "album", "n_faces"],
}


def load_run(out: str | Path, columns: dict | None = None, hidden: bool = False) -> dict[str, pd.DataFrame]:
    """The tables of a run as pandas, only the columns in `columns` (VIEW_COLUMNS by default);
    OUT is a folder or a URI pyarrow can open (file://, hdfs://, s3a://). People hidden with a
    label, and their faces, are left out unless hidden=True."""
    from facecluster.core.run_reader import has_table, read_table
    from facecluster.grouping.people import without_hidden

    run = {table.name: read_table(out, table, names) for table, names in (columns or VIEW_COLUMNS).items()
           if has_table(out, table)}
    return run if hidden else without_hidden(run)


def faces_of_people(run: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Faces with their person, most probable first within each person."""
    faces = run["faces"].merge(run["assignments"], on="face_id")
    return faces.sort_values(["person_id", "probability"], ascending=[True, False])


def album_matrix(run: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Rows: people (most albums first); columns: albums; cells: faces of that person there."""
    matrix = run["person_albums"].pivot_table(index="person_id", columns="album", values="n_faces",
                                              fill_value=0, aggfunc="sum")
    order = (matrix > 0).sum(axis=1).to_frame("albums").assign(faces=matrix.sum(axis=1))
    return matrix.loc[order.sort_values(["albums", "faces"], ascending=False).index]


NO_DATE = "no date"


def photos_per_year(run: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Rows: people (most faces first); columns: the years their photos were taken (EXIF's
    DateTimeOriginal), then 'no date'; cells: photos. A file's time is not counted as a year: a
    copy, a scan or a download resets it, so it says when the file was written, not the photo."""
    photos = run["photos"][["photo_id", "taken_at", "taken_at_source"]]
    faces = run["faces"][["face_id", "photo_id"]].merge(run["assignments"][["face_id", "person_id"]], on="face_id")
    seen = faces[faces["person_id"] >= 0][["person_id", "photo_id"]].drop_duplicates().merge(photos, on="photo_id")
    dated = seen["taken_at_source"] == "exif"
    seen["year"] = NO_DATE
    seen.loc[dated, "year"] = pd.to_datetime(seen.loc[dated, "taken_at"]).dt.year.astype(str)
    table = seen.pivot_table(index="person_id", columns="year", values="photo_id", aggfunc="count", fill_value=0)
    years = sorted(c for c in table.columns if c != NO_DATE) + ([NO_DATE] if NO_DATE in table.columns else [])
    order = run["people"].sort_values(["n_faces", "person_id"], ascending=[False, True])["person_id"]
    return table.reindex(index=[p for p in order if p in table.index], columns=years)


def face_grid(run: dict[str, pd.DataFrame], max_people: int = 12, faces_per_person: int = 8):
    """A matplotlib figure: one row of face thumbnails per person, largest people first."""
    import matplotlib.pyplot as plt
    from PIL import Image

    faces = faces_of_people(run)
    people = run["people"].sort_values("n_faces", ascending=False).head(max_people)
    figure, axes = plt.subplots(max(1, len(people)), faces_per_person,
                                figsize=(1.3 * faces_per_person, 1.5 * max(1, len(people))), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for row, person in enumerate(people.itertuples()):
        theirs = faces[faces["person_id"] == person.person_id].head(faces_per_person)
        label = person.name if isinstance(person.name, str) else f"person {person.person_id}"
        axes[row, 0].set_title(f"{label}: {person.n_faces} faces, {person.n_albums} albums",
                               loc="left", fontsize=8)
        for col, face in enumerate(theirs.itertuples()):
            axes[row, col].imshow(Image.open(io.BytesIO(face.thumb)))
    figure.tight_layout()
    return figure


def people_in_several_albums(run: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """People seen in more than one album, most albums first: the cross-album answer."""
    people = run["people"]
    several = people[people["n_albums"] > 1].sort_values(["n_albums", "n_faces"], ascending=False)
    return several[["person_id", "name", "n_faces", "n_photos", "n_albums", "albums"]].reset_index(drop=True)


def close_people(centroids: np.ndarray, neighbours: int = 5) -> list[tuple[int, int, float]]:
    """(i, j, distance) for each person and their nearest other people, each pair once, nearest
    first; a kNN search, so a million people cost no N x N matrix."""
    from facecluster.grouping.knn_hdbscan import KnnIndex

    if len(centroids) < 2:
        return []
    distances, found = KnnIndex(centroids, exact=True).search(np.arange(len(centroids)), neighbours)
    pairs = {}
    for i in range(len(centroids)):
        for distance, j in zip(distances[i], found[i]):
            key = (min(i, int(j)), max(i, int(j)))
            pairs[key] = float(distance)
    return sorted(((i, j, d) for (i, j), d in pairs.items()), key=lambda p: p[2])


def merge_suggestions(run: dict[str, pd.DataFrame], top: int = 20, max_distance: float | None = None) -> pd.DataFrame:
    """Pairs of people whose centroids are close, nearest first: perhaps one person split in two
    (across albums, or by pose and age). `cross_album` marks pairs seen in different albums only,
    the usual case of one person filed twice. max_distance None: the model's measured
    suggestion distance (facecluster/recognition/thresholds.py). Two people with faces in one photo
    are never suggested: a photo shows two people (a label can still merge them)."""
    if max_distance is None:
        from facecluster.recognition.thresholds import distances

        faces = run["faces"]
        max_distance = distances(faces["model"].iloc[0], np.stack(faces["embedding"].to_numpy()),
                                 faces["photo_id"].to_numpy()).suggest_merge
    people = run["people"].reset_index(drop=True)
    if len(people) < 2:
        return pd.DataFrame(columns=["person_a", "person_b", "distance", "cross_album", "albums_a", "albums_b"])
    pairs = close_people(np.stack(people["centroid"].to_numpy()).astype(np.float32), neighbours=5)
    photos_of = {}
    if "assignments" in run:  # two people seen in one photo are two people: never suggested as one
        faces = run["faces"][["face_id", "photo_id"]].merge(run["assignments"][["face_id", "person_id"]], on="face_id")
        photos_of = faces.groupby("person_id")["photo_id"].agg(set).to_dict()
    rows = []
    for i, j, distance in pairs:
        if distance > max_distance or len(rows) == top:
            break
        a, b = people.iloc[i], people.iloc[j]
        if photos_of.get(int(a.person_id), set()) & photos_of.get(int(b.person_id), set()):
            continue
        rows.append({"person_a": int(a.person_id), "person_b": int(b.person_id), "distance": float(distance),
                     "cross_album": not set(a.albums) & set(b.albums),
                     "albums_a": list(a.albums), "albums_b": list(b.albums)})
    return pd.DataFrame(rows, columns=["person_a", "person_b", "distance", "cross_album", "albums_a", "albums_b"])


def people_sizes(run: dict[str, pd.DataFrame]):
    """A histogram of people by number of faces (the long tail of an archive)."""
    import matplotlib.pyplot as plt

    figure, ax = plt.subplots(figsize=(6, 3))
    sizes = run["people"]["n_faces"]
    ax.hist(sizes, bins=range(1, int(sizes.max() if len(sizes) else 1) + 2), color="#4477aa", edgecolor="white")
    ax.set(xlabel="faces of the person", ylabel="people", title=f"{len(sizes)} people")
    figure.tight_layout()
    return figure


def suggestion_grids(run: dict[str, pd.DataFrame], suggestions: pd.DataFrame, faces_per_person: int = 5):
    """One row per suggestion: the faces of both people side by side."""
    import matplotlib.pyplot as plt
    from PIL import Image

    faces = faces_of_people(run)
    rows = max(1, len(suggestions))
    figure, axes = plt.subplots(rows, 2 * faces_per_person + 1, figsize=(1.2 * (2 * faces_per_person + 1), 1.4 * rows),
                                squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for row, pair in enumerate(suggestions.itertuples()):
        for side, person in enumerate((pair.person_a, pair.person_b)):
            theirs = faces[faces["person_id"] == person].head(faces_per_person)
            offset = side * (faces_per_person + 1)
            axes[row, offset].set_title(f"person {person}" + (f"  (distance {pair.distance:.2f})" if side == 0 else ""),
                                        loc="left", fontsize=8)
            for col, face in enumerate(theirs.itertuples()):
                axes[row, offset + col].imshow(Image.open(io.BytesIO(face.thumb)))
    figure.tight_layout()
    return figure


def face_map(run: dict[str, pd.DataFrame], seed: int = 0):
    """Every face on a 2-D map (t-SNE of the embeddings; PCA above 5,000 faces), coloured by person."""
    import matplotlib.pyplot as plt

    faces = run["faces"].merge(run["assignments"][["face_id", "person_id"]], on="face_id")
    X = np.stack(faces["embedding"].to_numpy()).astype(np.float32)
    if len(X) > 5000 or len(X) < 5:
        from sklearn.decomposition import PCA

        points = PCA(n_components=2, random_state=seed).fit_transform(X) if len(X) >= 2 else np.zeros((len(X), 2))
        how = "PCA"
    else:
        from sklearn.manifold import TSNE

        points = TSNE(n_components=2, perplexity=min(30, len(X) - 1) / 2, random_state=seed, init="pca").fit_transform(X)
        how = "t-SNE"
    figure, ax = plt.subplots(figsize=(6, 5))
    noise = faces["person_id"].to_numpy() == -1
    ax.scatter(points[noise, 0], points[noise, 1], c="lightgrey", s=14, label="not grouped")
    scatter = ax.scatter(points[~noise, 0], points[~noise, 1], c=faces["person_id"].to_numpy()[~noise], cmap="tab20",
                         s=22)
    for person, rows in faces[~noise].groupby("person_id").groups.items():
        centre = points[np.asarray(list(rows))].mean(axis=0)
        ax.annotate(str(person), centre, fontsize=8, weight="bold")
    ax.set(title=f"faces by person ({how} of the embeddings)", xticks=[], yticks=[])
    ax.legend(loc="best", fontsize=7)
    del scatter
    figure.tight_layout()
    return figure
