"""Looking at a finished run: tables as pandas, face grids, the person x album matrix.

Used by notebooks/; reads the Parquet tables directly (no Spark needed to look at a run).
"""
from __future__ import annotations

import io
from pathlib import Path

import pandas as pd


def load_run(out: str | Path) -> dict[str, pd.DataFrame]:
    out = Path(out)
    return {name: pd.read_parquet(out / name) for name in
            ("photos", "photo_status", "faces", "assignments", "people", "person_albums")
            if (out / name).exists()}


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
