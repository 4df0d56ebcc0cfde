"""facecluster: find the people in a photo archive.

    facecluster run PHOTOS --out OUT [--embedder auto|dlib|facenet] [--config conf/local.yaml] [--set KEY=VALUE]
    facecluster ingest PHOTOS --out OUT        one step at a time
    facecluster embed --out OUT
    facecluster cluster --out OUT
    facecluster people --out OUT
    facecluster evaluate clusters OUT --labels folder|LABELS.csv [--json]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

from facecluster.runtime import add_settings_arguments, parse_job_arguments, start_spark, table_path


def _run_parser(sub) -> argparse.ArgumentParser:
    parser = sub.add_parser("run", help="the whole job: ingest, embed, cluster, people")
    parser.add_argument("photos", help="folder of photos (one sub-folder per album) or a Parquet table")
    parser.add_argument("--out", required=True, help="output root for the tables")
    parser.add_argument("--format", dest="source_format", choices=["folder", "parquet"], default="folder")
    add_settings_arguments(parser)
    return parser


def run(args: argparse.Namespace, settings: dict, parser: argparse.ArgumentParser) -> int:
    from jobs import cluster, embed, ingest, people

    if args.source_format == "folder" and "://" not in args.photos and not os.path.isdir(args.photos):
        parser.exit(2, f"facecluster: {args.photos} is not a folder of photos\n")
    try:
        embed_settings, weights = embed.resolve_embedder(settings["embed"])
    except RuntimeError as exc:
        parser.exit(2, f"facecluster: {exc}\n")
    spark = start_spark(settings)
    timings = {}

    def step(name, action):
        print(f"[{name}] ...", flush=True)
        started = time.perf_counter()
        result = action()
        timings[name] = time.perf_counter() - started
        print(f"[{name}] done in {timings[name]:.1f} s", flush=True)
        return result

    step("ingest", lambda: ingest.ingest(spark, args.photos, args.out, args.source_format))
    work = step("embed", lambda: embed.embed(spark, args.out, embed_settings, weights))
    step("cluster", lambda: cluster.cluster(spark, args.out, settings["cluster"]))
    view = step("people", lambda: people.people_view(spark, args.out).collect())

    photos = embed.summary(spark, args.out)
    clusters = cluster.summary(spark, args.out)
    print()
    print(f"Results in {os.path.abspath(args.out) if '://' not in args.out else args.out}")
    print(f"  model:   {', '.join(photos['models']) or embed_settings['embedder']}")
    print(f"  photos:  {photos['photos']} ({photos['ok']} with faces, {photos['no_face']} without, "
          f"{photos['error']} could not be read: see photo_status)")
    if work["already_done"]:
        print(f"           {work['already_done']} embedded by an earlier run, {work['embedded_now']} now")
    print(f"  faces:   {photos['faces']}")
    print(f"  people:  {clusters['people']} ({clusters['noise_faces']} faces not grouped: seen once or unsure)")
    if clusters["too_small"]:
        print(f"           {clusters['too_small']} faces too small to recognise (cluster.min_face_px), kept in faces")
    print(f"  people in more than one album: {clusters['people_in_several_albums']}")
    print(f"  time:    " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))
    print()
    print(people.format_view(view))
    print()
    print(f"Tables: {', '.join(table_path(args.out, t) for t in ('photos', 'photo_status', 'faces', 'assignments', 'people', 'person_albums'))}")
    return 0


def _evaluate_parser(sub) -> argparse.ArgumentParser:
    parser = sub.add_parser("evaluate", help="score a run against people whose names are known")
    kinds = parser.add_subparsers(dest="kind", required=True)
    clusters = kinds.add_parser("clusters", help="pairwise and BCubed precision/recall/F, NMI, people, noise share")
    clusters.add_argument("out", help="output root of a clustered run")
    clusters.add_argument("--labels", required=True,
                          help="'folder' (the person is each photo's folder, as in LFW) or a CSV with a person "
                               "column and face_id, photo_id or path (for photo keys the face nearest the centre "
                               "is scored)")
    clusters.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def evaluate(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    import json

    import pandas as pd

    from facecluster.evaluation import evaluate_run, format_report

    try:
        labels = args.labels if args.labels == "folder" else pd.read_csv(args.labels)
        report = evaluate_run(args.out, labels)
    except (OSError, ValueError) as exc:
        parser.exit(2, f"facecluster evaluate: {exc}\n")
    print(json.dumps(report) if args.json else format_report(args.out, report))
    return 0


def main(argv: list[str] | None = None) -> int:
    from jobs import cluster, embed, ingest, people

    parser = argparse.ArgumentParser(prog="facecluster", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run_parser = _run_parser(sub)
    steps = {"ingest": ingest, "embed": embed, "cluster": cluster, "people": people}
    for name, job in steps.items():
        job.build_parser(sub.add_parser(name, help=(job.__doc__ or "").strip().splitlines()[0]))
    evaluate_parser = _evaluate_parser(sub)
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in steps:
        return steps[argv[0]].main(argv[1:])
    if argv and argv[0] == "evaluate":
        return evaluate(parser.parse_args(argv), evaluate_parser)
    args, settings = parse_job_arguments(parser, argv)
    return run(args, settings, run_parser)


if __name__ == "__main__":
    sys.exit(main())
