"""The command-line arguments of each Spark job, declared once: `facecluster <job>` and
`spark-submit jobs/<job>.py` read the same. Only argparse here, so that `facecluster --help`
answers without starting Python's data stack."""
from __future__ import annotations

import argparse

# name: (one line for `facecluster --help`, the function that declares its arguments)
JOBS: dict = {}


def job(name: str, summary: str):
    def register(declare):
        JOBS[name] = (summary, declare)
        return declare
    return register


def add_settings_arguments(parser: argparse.ArgumentParser, embedder: bool = False) -> None:
    """--config, --set, --verbose; --embedder where a command embeds faces."""
    parser.add_argument("--config", help="your settings file: only the keys it changes, over the defaults")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one setting, e.g. --set embed.max_canvas=800 (repeatable)")
    parser.add_argument("--verbose", action="store_true", help="show Spark's own log (warnings and above)")
    if embedder:
        parser.add_argument("--embedder", choices=["auto", "dlib", "dlib-one-view", "facenet"],
                            help="shortcut for --set embed.embedder=...")


def add_identifier_arguments(parser) -> None:
    """The identifier's options, shared by `facecluster identify` and jobs/identify.py."""
    parser.add_argument("--method", choices=["nearest", "svm"], default="nearest",
                        help="nearest enrolled face within the distance measured for --far (default, one photo per "
                             "person is enough), or an SVM (several photos per person)")
    parser.add_argument("--far", type=float, choices=[0.01, 0.001], default=0.01,
                        help="nearest: the share of strangers that may be named (default 0.01); the distance "
                             "for it was measured on strangers (facecluster evaluate identify)")
    parser.add_argument("--max-distance", type=float, help="nearest: accept within this distance instead")
    parser.add_argument("--min-probability", type=float, default=0.5, help="svm: accept from this probability")


@job("ingest", "read a folder of photos (or a Parquet table of image bytes) into the photos table")
def ingest(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("photos", help="folder of photos (one sub-folder per album) or a Parquet table")
    parser.add_argument("--out", required=True, help="output root for the tables")
    parser.add_argument("--format", dest="source_format", choices=["folder", "parquet"], default="folder")
    add_settings_arguments(parser)


@job("embed", "find and embed every face of the photos not embedded yet")
def embed(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output root holding the photos table")
    add_settings_arguments(parser, embedder=True)


@job("cluster", "group the faces into people (HDBSCAN), obeying labels.csv")
def cluster(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output root holding the faces table")
    add_settings_arguments(parser)


@job("people", "the people by album: person_albums, and the people view printed")
def people(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output root of a clustered run")
    add_settings_arguments(parser)


@job("forget", "remove a person or a photo from every table, and keep them out of later runs")
def forget(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output root of a run")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--person", type=int, help="person id")
    target.add_argument("--photo", help="photo path (as ingested) or photo_id")
    add_settings_arguments(parser)


@job("knn-graph", "every face's nearest faces, computed on the executors (the knn_graph table)")
def knn_graph(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output root holding the faces table")
    parser.add_argument("--k", type=int, default=32, help="neighbours per face")
    parser.add_argument("--lists", default="auto", help="inverted lists (auto: about 4 sqrt(N))")
    parser.add_argument("--probes", type=int, default=16, help="lists each face is looked for in")
    add_settings_arguments(parser)


def job_parser(name: str, description: str | None) -> argparse.ArgumentParser:
    """The parser of `spark-submit jobs/<name>.py`, as `facecluster <name>` has it."""
    parser = argparse.ArgumentParser(prog=f"facecluster {name}", description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    JOBS[name][1](parser)
    return parser
