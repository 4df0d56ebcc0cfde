"""facecluster: find the people in a photo archive.

    facecluster run PHOTOS --out OUT          the whole job: ingest, embed, cluster, people
    facecluster ingest | embed | cluster | people --out OUT     one step at a time
    facecluster label --out OUT name PERSON NAME | merge PERSON OTHER | move-out FACE | not-a-face FACE
                      | assign FACE [--person P] [--name N] | hide PERSON
    facecluster forget --out OUT --person ID | --photo PATH_OR_ID
    facecluster review OUT                    look at the people and fix them, in the browser
    facecluster report OUT                    a gallery page (HTML) of the people
    facecluster export OUT --to DIR           XMP face regions for photo managers, and a CSV
    facecluster verify PHOTO_A PHOTO_B        same person? distance and calibrated probability
    facecluster identify PHOTOS --gallery G   who is each face, or "unknown"
    facecluster evaluate clusters|pairs|identify ...    scores against people whose names are known
    facecluster train --images FOLDER --save DIR        a triplet-loss head on frozen embeddings
    facecluster settings                      every setting, its default and what it does

Settings: the defaults (facecluster/core/defaults.yaml), then --config FILE (only the keys it
changes), then --set KEY=VALUE. `facecluster COMMAND --help` tells a command's arguments.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from facecluster import __version__
from facecluster.core.job_arguments import JOBS
from facecluster.core.runtime import user_errors

# Commands run in this process: name -> one line for --help (arguments and handler in commands.py).
IN_PROCESS = {
    "run": "the whole job: ingest, embed, cluster, people",
    "label": "name, merge, move a face out, mark not-a-face: kept by every later run",
    "review": "look at the people of a run and fix them, in the browser (a page served on this machine)",
    "report": "a self-contained gallery page (HTML) of the people of a run",
    "export": "XMP sidecars with the named people's face regions (digiKam, Lightroom, Immich) and a CSV",
    "verify": "are the main faces of two photos the same person?",
    "identify": "name every face in some photos from a gallery, or \"unknown\"",
    "evaluate": "score a run against people whose names are known",
    "train": "triplet-loss training: a head on frozen embeddings, or (GPU) FaceNet itself",
    "settings": "every setting, its default and what it does",
}
ORDER = ["run", "ingest", "embed", "cluster", "people", "label", "forget", "review", "report", "export", "verify", "identify",
         "evaluate", "train", "knn-graph", "settings"]


def build_parser() -> argparse.ArgumentParser:
    """Every sub-command's parser; nothing heavier than argparse is imported."""
    from facecluster.cli import commands

    parser = argparse.ArgumentParser(prog="facecluster", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"facecluster {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in ORDER:
        if name in JOBS:
            summary, declare = JOBS[name]
            command = sub.add_parser(name, help=summary, description=summary)
            declare(command)
            command.set_defaults(job=f"facecluster.jobs.{name.replace('-', '_')}")
        else:
            command = sub.add_parser(name, help=IN_PROCESS[name], description=IN_PROCESS[name])
            getattr(commands, f"{name}_arguments")(command)
            command.set_defaults(handler=getattr(commands, name), parser=command)
    return parser


@user_errors
def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    if getattr(args, "job", None):
        # A Spark job parses its own arguments, as under spark-submit: one path for both.
        return importlib.import_module(args.job).main(argv[argv.index(args.command) + 1:])
    try:
        return args.handler(args, args.parser)
    except BrokenPipeError:  # `facecluster settings | head`: the reader has what it wanted
        sys.stderr.close()
        return 0
