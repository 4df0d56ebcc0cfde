"""What the commands that run in this process (not as Spark jobs of their own) do: run, evaluate,
verify, identify, train, label, report."""
from __future__ import annotations

import argparse
import os
import sys
import time

from facecluster.core.job_arguments import add_identifier_arguments, add_settings_arguments
from facecluster.core.runtime import describe, settings_from
from facecluster.output.session import finish_interrupted_forget, job_session


def run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("photos", help="folder of photos (one sub-folder per album) or a Parquet table")
    parser.add_argument("--out", required=True, help="output root for the tables")
    parser.add_argument("--format", dest="source_format", choices=["folder", "parquet"], default="folder")
    add_settings_arguments(parser, embedder=True)


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    settings = settings_from(args)
    from facecluster.core.catalogue import RESULTS
    from facecluster.jobs import cluster, embed, ingest, people
    from facecluster.core.run_reader import run_models
    from facecluster.udfs.embedders import resolve_embedder

    ingest.check_source(args.photos, args.source_format)
    from facecluster.grouping.knn_hdbscan import knn_device

    try:
        embed_settings, weights = resolve_embedder(settings["embed"], run_models(args.out))
        knn_device(settings["cluster"]["device"])
    except RuntimeError as exc:
        parser.exit(2, f"facecluster: {exc}\n")
    with job_session(settings, args.out, "run", create=True) as spark:
        timings = {}

        def step(name, action):
            print(f"[{name}] ...", flush=True)
            describe(spark, name, args.out)
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
        print(f"Results in {args.out}")
        print(f"  model:   {', '.join(photos['models']) or embed_settings['embedder']}")
        print(f"  photos:  {photos['photos']} ({photos['ok']} with faces, {photos['no_face']} without, "
              f"{photos['error']} could not be read: see photo_status)")
        if work["already_done"]:
            print(f"           {work['already_done']} embedded by an earlier run, {work['embedded_now']} now")
        print(f"  faces:   {photos['faces']}")
        print(f"  people:  {clusters['people']} ({clusters['noise_faces']} faces not grouped: seen once or unsure)")
        if clusters["left_out"]:
            reasons = ", ".join(f"{n} {why}" for why, n in clusters["left_out"].items())
            print(f"           {sum(clusters['left_out'].values())} faces too poor to recognise ({reasons}: "
                  "assignments.left_out), kept in faces")
        print(f"  people in more than one album: {clusters['people_in_several_albums']}")
        print("  time:    " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))
        print()
        print(people.format_view(view))
        print()
        print(f"Tables: {', '.join(table.path(args.out) for table in RESULTS)}")
    return 0


def evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    kinds = parser.add_subparsers(dest="kind", required=True)
    clusters = kinds.add_parser("clusters", help="pairwise and BCubed precision/recall/F, NMI, people, noise share")
    clusters.add_argument("out", help="output root of a clustered run")
    clusters.add_argument("--labels", required=True,
                          help="'folder' (the person is each photo's folder, as in LFW) or a CSV with a person "
                               "column and face_id, photo_id or path (for photo keys the face nearest the centre "
                               "is scored)")
    clusters.add_argument("--json", action="store_true", help="print one JSON object")
    pairs = kinds.add_parser("pairs", help="verification on labelled pairs (LFW format): 10-fold accuracy, "
                                           "VAL@FAR=1e-3, AUC, calibration error")
    pairs.add_argument("pairs_file", help="pairs in LFW's format: 'name i j' or 'name1 i name2 j' per line")
    pairs.add_argument("--images", required=True, help="folder of Name/Name_0001.jpg photos")
    pairs.add_argument("--run", help="output root of a run that embedded these photos: reuse its faces")
    pairs.add_argument("--plot", help="save the reliability plot (PNG) here")
    pairs.add_argument("--save-calibration", metavar="DIR",
                       help="store the threshold and calibration fitted on all pairs as DIR/<model>.json")
    pairs.add_argument("--json", action="store_true", help="print one JSON object")
    add_settings_arguments(pairs, embedder=True)
    identify = kinds.add_parser("identify", help="open-set identification: DIR at FAR 1%% and 0.1%%, "
                                                 "nearest neighbour and SVM")
    identify.add_argument("--images", required=True, help="folder of Person/photo.jpg (the folder names the person)")
    identify.add_argument("--run", help="output root of a run that embedded these photos: reuse its faces")
    identify.add_argument("--shots", type=int, nargs="+", default=[2, 5],
                          help="photos enrolled per person in the nearest-neighbour vs SVM comparisons")
    identify.add_argument("--seed", type=int, default=0)
    identify.add_argument("--save-calibration", metavar="DIR",
                          help="store the model's calibration with the measured open-set distances as DIR/<model>.json")
    identify.add_argument("--json", action="store_true", help="print one JSON object")
    add_settings_arguments(identify, embedder=True)


def evaluate(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    import json

    import pandas as pd

    from facecluster.measuring.evaluation import evaluate_run, format_report

    if args.kind == "pairs":
        return evaluate_pairs(args, parser)
    if args.kind == "identify":
        return evaluate_identify(args, parser)
    try:
        labels = args.labels if args.labels == "folder" else pd.read_csv(args.labels)
        report = evaluate_run(args.out, labels)
    except (OSError, ValueError) as exc:
        parser.exit(2, f"facecluster evaluate: {exc}\n")
    print(json.dumps(report) if args.json else format_report(args.out, report))
    return 0


def _embed_settings(args, parser) -> tuple[dict, str | None]:
    """Embed settings with the embedder resolved, before any work (a wrong setting stops here);
    a command given a run (--run, --out) embeds as that run did."""
    from facecluster.core.run_reader import run_models
    from facecluster.core.settings import SettingsError
    from facecluster.udfs.embedders import resolve_embedder

    run = getattr(args, "run", None) or getattr(args, "out", None)
    try:
        return resolve_embedder(settings_from(args)["embed"], run_models(run) if run else ())
    except (SettingsError, RuntimeError) as exc:
        parser.exit(2, f"facecluster: {exc}\n")


def evaluate_pairs(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    import json

    import numpy as np

    from facecluster.recognition.photo_faces import main_faces
    from facecluster.recognition.verification import evaluate_pair_distances, format_pairs_report, read_pairs

    embed_settings, weights = _embed_settings(args, parser)
    try:
        pairs = read_pairs(args.pairs_file, args.images)
        faces = main_faces(sorted({p for a, b, _ in pairs for p in (a, b)}), embed_settings, weights, args.run)
    except (OSError, ValueError) as exc:
        parser.exit(2, f"facecluster evaluate pairs: {exc}\n")
    embedding = dict(zip(faces["path"], faces["embedding"]))
    distances, same, missing = [], [], 0
    for a, b, is_same in pairs:
        if embedding[a] is None or embedding[b] is None:
            missing += 1  # LFW's protocol has no answer for a pair without a face: reported, not scored
            continue
        distances.append(float(np.linalg.norm(embedding[a] - embedding[b])))
        same.append(is_same)
    report = evaluate_pair_distances(distances, same, faces["model"].iloc[0], plot=args.plot)
    report["missing"] = missing
    calibration = report.pop("calibration")
    if args.save_calibration:
        calibration.source = f"{os.path.basename(args.pairs_file)}: {len(distances)} pairs"
        report["saved"] = str(calibration.save(args.save_calibration))
    print(json.dumps(report) if args.json else format_pairs_report(report))
    return 0


def evaluate_identify(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    import json
    from pathlib import Path

    from facecluster.recognition.identification import evaluate_identification, format_identification_report
    from facecluster.recognition.photo_faces import main_faces
    from facecluster.recognition.verification import CalibrationMissing, calibration_for
    embed_settings, weights = _embed_settings(args, parser)
    try:
        calibration = calibration_for(embed_settings)
        photos = sorted(str(p) for p in Path(args.images).glob("*/*") if p.is_file())
        if not photos:
            raise ValueError(f"{args.images} has no photos in person sub-folders")
        faces = main_faces(photos, embed_settings, weights, args.run)
    except (OSError, ValueError, CalibrationMissing) as exc:
        parser.exit(2, f"facecluster evaluate identify: {exc}\n")
    faces = faces[faces["embedding"].notna()].drop_duplicates("photo_id")
    faces = faces.assign(person=faces["path"].map(lambda p: Path(p).parent.name))
    report = evaluate_identification(faces, calibration, shots=args.shots, seed=args.seed)
    if args.save_calibration:
        calibration.open_set = report["open_set"]
        report["saved"] = str(calibration.save(args.save_calibration))
    print(json.dumps(report) if args.json else format_identification_report(report))
    return 0


def identify_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("photos", nargs="+", help="photos, or folders of photos")
    parser.add_argument("--gallery", required=True,
                        help="folder with one sub-folder of photos per named person, or run:OUT for the "
                             "people named in a run")
    add_identifier_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object per face")
    add_settings_arguments(parser, embedder=True)


def identify(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    import json
    from pathlib import Path

    import numpy as np

    from facecluster.recognition.identification import gallery_from_folder, gallery_from_run, identifier_for
    from facecluster.recognition.photo_faces import photo_rows, embed_in_process
    from facecluster.recognition.verification import CalibrationMissing, calibration_for

    embed_settings, weights = _embed_settings(args, parser)
    photos = []
    for item in args.photos:
        path = Path(item)
        photos += sorted(str(p) for p in path.rglob("*") if p.is_file()) if path.is_dir() else [item]
    try:
        if args.gallery.startswith("run:"):
            gallery = gallery_from_run(args.gallery[4:])
        else:
            gallery, skipped = gallery_from_folder(args.gallery, embed_settings, weights)
            for row in skipped.itertuples():
                print(f"gallery: {row.path} left out: {row.error or 'no face found'}", file=sys.stderr)
        calibration = calibration_for(embed_settings)
        if calibration.model_id != gallery.model_id:
            raise ValueError(f"the gallery was embedded by {gallery.model_id}, these settings embed with "
                             f"{calibration.model_id}: embeddings of different models are never compared")
        identifier = identifier_for(args.method, calibration, args.max_distance, args.min_probability, args.far)
        identifier.fit(gallery.embeddings, gallery.names)
        rows = photo_rows(photos)
    except (OSError, ValueError, CalibrationMissing) as exc:
        parser.exit(2, f"facecluster identify: {exc}\n")
    faces, status = embed_in_process(rows.drop_duplicates("photo_id"), embed_settings, weights)
    if len(faces) and faces["model"].iloc[0] != gallery.model_id:
        parser.exit(2, f"facecluster identify: the gallery was embedded by {gallery.model_id}, the photos by "
                       f"{faces['model'].iloc[0]}: embeddings of different models are never compared\n")
    names = identifier.predict(np.stack(faces["embedding"].to_numpy())) if len(faces) else []
    faces = faces.assign(name=names, probability=identifier.probability_ if len(faces) else [])
    for photo in rows.merge(status.drop(columns=["path", "album"]), on="photo_id").itertuples():
        mine = faces[faces["photo_id"] == photo.photo_id]
        if photo.status == "error":
            print(json.dumps({"path": photo.path, "error": photo.error}) if args.json
                  else f"{photo.path}: cannot read: {photo.error}")
        for face in mine.itertuples():
            box = [round(float(v)) for v in face.box]
            record = {"path": photo.path, "face_id": face.face_id, "box": box, "name": face.name,
                      "probability": round(float(face.probability), 4)}
            if args.method == "nearest":
                record["distance"] = round(float(identifier.distance_[face.Index]), 4)
            print(json.dumps(record) if args.json else
                  f"{photo.path} face {face.face_id.rsplit(':', 1)[1]} at {box}: {face.name} "
                  f"(probability {face.probability:.3f})")
        if photo.status == "no_face" and not args.json:
            print(f"{photo.path}: no face")
    return 0


def train_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--images", help="folder with one sub-folder of photos per person")
    source.add_argument("--run", help="output root of a run whose people have names (head only)")
    parser.add_argument("--save", required=True, help="folder for the result (<model id>.pt) and its calibration")
    parser.add_argument("--finetune", action="store_true",
                        help="fine-tune InceptionResnetV1 itself (embedder facenet; meant for a GPU) instead of "
                             "training a head on frozen embeddings")
    parser.add_argument("--calibration-share", type=float, default=0.2,
                        help="share of people held out of training to calibrate the new distances")
    add_settings_arguments(parser, embedder=True)


def train(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from pathlib import Path

    import numpy as np

    from facecluster.recognition.verification import DistanceCalibration, labelled_pair_distances

    embed_settings, weights = _embed_settings(args, parser)
    if embed_settings["head"]:
        parser.exit(2, "facecluster train: trains on the embedder's own embeddings; unset embed.head\n")
    if args.finetune and (embed_settings["embedder"] != "facenet" or args.run):
        parser.exit(2, "facecluster train --finetune: needs --embedder facenet (and its weights) and --images\n")
    settings = settings_from(args)["train"]
    head_settings = {k: settings[k] for k in ("margin", "mining", "people_per_batch", "faces_per_person", "steps",
                                              "learning_rate")}
    try:
        if args.finetune:
            from facecluster.training.finetune import FacenetFinetuner, face_chips, save_finetuned
            from facecluster.udfs.embedders import choose_device

            photos = sorted(str(p) for p in Path(args.images).glob("*/*") if p.is_file())
            chips, owners = face_chips(photos, embed_settings)
            inputs, names = chips, np.array([Path(photos[i]).parent.name for i in owners])
        else:
            from facecluster.recognition.identification import gallery_from_folder, gallery_from_run
            from facecluster.training.triplet import TripletTrainer, save_head
            from facecluster.udfs.head import apply_head

            gallery = (gallery_from_run(args.run) if args.run else
                       gallery_from_folder(args.images, embed_settings, weights)[0])
            inputs, names = gallery.embeddings, gallery.names
        people = np.array(sorted(set(names)))
        rng = np.random.default_rng(0)
        held_out = set(rng.choice(people, size=max(2, int(round(args.calibration_share * len(people)))),
                                  replace=False))
        learn = ~np.isin(names, list(held_out))
        if args.finetune:
            tuner = FacenetFinetuner(Path(weights) if weights else None, choose_device(embed_settings["device"]),
                                     **{**head_settings, "learning_rate": settings["finetune_learning_rate"]},
                                     layers=settings["finetune_layers"]).fit(inputs[learn], names[learn])
            check = tuner.embed(inputs[~learn])
            model_id, path = save_finetuned(tuner.model_, args.save, settings)
            use = f"--embedder facenet --set embed.facenet_weights={path}"
        else:
            trainer = TripletTrainer(**head_settings).fit(inputs[learn], names[learn])
            check = apply_head(trainer.head_, inputs[~learn])
            model_id, path = save_head(trainer.head_, gallery.model_id, args.save, head_settings)
            use = f"--set embed.head={path}"
        distances, same = labelled_pair_distances(check, names[~learn])
        calibration = DistanceCalibration(model_id).fit(distances, same)
    except (OSError, ValueError) as exc:
        parser.exit(2, f"facecluster train: {exc}\n")
    calibration.source = f"{int(same.sum())} same and {int((~same).sum())} different pairs of {len(held_out)} " \
                         f"people held out of training"
    calibration.save(args.save)
    print(f"trained {model_id} on {int(learn.sum())} faces of {len(people) - len(held_out)} people; "
          f"calibrated on {len(held_out)} other people (threshold {calibration.threshold_:.3f})")
    print(f"saved: {path}\nuse it with: {use}")
    return 0


def label_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output root of a clustered run (local folder)")
    actions = parser.add_subparsers(dest="action", required=True)
    name = actions.add_parser("name", help="give a person a name")
    name.add_argument("person_id", type=int)
    name.add_argument("name")
    merge = actions.add_parser("merge", help="OTHER is the same person as PERSON")
    merge.add_argument("person_id", type=int)
    merge.add_argument("other_person_id", type=int)
    several = "one or more face ids: one action, one line of the log, one undo"
    move = actions.add_parser("move-out", help="these faces are not of the person they are in")
    move.add_argument("face_id", nargs="+", help=several)
    not_face = actions.add_parser("not-a-face", help="false detections: never cluster them")
    not_face.add_argument("face_id", nargs="+", help=several)
    assign = actions.add_parser("assign", help="these faces are PERSON (or, without --person, a new person)")
    assign.add_argument("face_id", nargs="+", help=several)
    assign.add_argument("--person", dest="person_id", type=int, help="the person it is (default: a new person)")
    assign.add_argument("--name", help="the new person's name")
    cover = actions.add_parser("cover", help="show this face as the picture of whoever holds it")
    cover.add_argument("face_id")
    hide = actions.add_parser("hide", help="keep this person but never show or export them")
    hide.add_argument("person_id", type=int)


def label(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from facecluster.curation.labels import add_label

    fields = {k: getattr(args, k) for k in ("person_id", "other_person_id", "face_id", "name") if hasattr(args, k)}
    if isinstance(fields.get("face_id"), list):
        fields["face_id"] = " ".join(fields["face_id"])
    from facecluster.core.lock import output_lock

    try:
        finish_interrupted_forget(args.out)
        with output_lock(args.out, "label"):
            log = add_label(args.out, args.action.replace("-", "_"), **fields)
    except OSError as exc:
        parser.exit(2, f"facecluster label: {exc}\n")
    print(f"{len(log)} labels in {os.path.join(args.out, 'labels.csv')}; the next `facecluster cluster` applies them")
    return 0


def review_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", help="output root of a clustered run (a folder; or a file://, hdfs:// or s3a:// URI "
                                    "to look only)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to serve on (default 127.0.0.1: this machine only; another needs --token)")
    parser.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    parser.add_argument("--token", help="a secret every request must carry (needed when --host is not loopback)")
    parser.add_argument("--no-browser", action="store_true", help="print the address, do not open a browser")


def review(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    import webbrowser

    from facecluster.viewing.review_server import start_review

    try:
        finish_interrupted_forget(args.out)
        server, address = start_review(args.out, args.host, args.port, args.token)
    except (OSError, KeyError) as exc:
        parser.exit(2, f"facecluster review: {args.out} is not a clustered run ({exc})\n")
    print(f"review: {address}\n(actions go to the run's labels.csv; `facecluster cluster` applies them; "
          "Ctrl-C stops)", flush=True)
    if not args.no_browser:
        webbrowser.open(address)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def report_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", help="output root of a clustered run")
    parser.add_argument("--to", help="where to write the page (default OUT/report/index.html)")


def report(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from facecluster.viewing.report import write_report

    try:
        finish_interrupted_forget(args.out)
        path = write_report(args.out, args.to)
    except (OSError, KeyError) as exc:
        parser.exit(2, f"facecluster report: {args.out} is not a clustered run ({exc})\n")
    print(f"gallery page: {path}")
    return 0


def export_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", help="output root of a clustered run (a folder or a file://, hdfs:// or s3a:// URI)")
    parser.add_argument("--to", required=True, help="folder for the sidecars (mirroring the archive) and faces.csv")
    parser.add_argument("--beside-originals", action="store_true",
                        help="write each sidecar beside its photo instead (a sidecar already there is edited: "
                             "everything else in it kept)")
    parser.add_argument("--person-in-image", action="store_true",
                        help="also write the names as IPTC Extension PersonInImage (what newsroom archives search)")
    parser.add_argument("--keywords", action="store_true", help="also write the names as dc:subject keywords")
    parser.add_argument("--unnamed", action="store_true",
                        help="export people without a name too, as 'person N' (default: named people only)")


def export(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from facecluster.output.export import ExportError, export_run

    try:
        finish_interrupted_forget(args.out)
        done = export_run(args.out, args.to, args.beside_originals, person_in_image=args.person_in_image,
                          keywords=args.keywords, unnamed=args.unnamed)
    except (OSError, KeyError, ExportError) as exc:
        parser.exit(2, f"facecluster export: {exc}\n")
    print(f"export: {done['sidecars']} sidecars with {done['named_faces']} faces of people "
          f"({done['removed']} of the last export taken back); {done['faces']} faces in {done['csv']}")
    for path in done["merged"]:
        print(f"export: added to {path}, which another tool wrote; the rest of it is kept", file=sys.stderr)
    for reason in done["unreadable"]:
        print(f"export: {reason}", file=sys.stderr)
    return 0


def verify_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("photo_a")
    parser.add_argument("photo_b")
    parser.add_argument("--prior", type=float, default=0.5,
                        help="share of pairs like this one that are the same person (default 0.5: even odds)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    add_settings_arguments(parser, embedder=True)


def verify(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    import json

    import numpy as np

    from facecluster.recognition.photo_faces import main_faces
    from facecluster.recognition.verification import CalibrationMissing, calibration_for

    if not 0 < args.prior < 1:
        parser.exit(2, f"facecluster verify: --prior must be between 0 and 1, got {args.prior}\n")
    embed_settings, weights = _embed_settings(args, parser)
    try:
        calibration = calibration_for(embed_settings)
        faces = main_faces([args.photo_a, args.photo_b], embed_settings, weights)
    except (OSError, CalibrationMissing) as exc:
        parser.exit(2, f"facecluster verify: {exc}\n")
    for face in faces.itertuples():
        if face.embedding is None:
            why = face.error if face.status == "error" else "no face found"
            parser.exit(1, f"facecluster verify: {face.path}: {why}\n")
    distance = float(np.linalg.norm(faces["embedding"][0] - faces["embedding"][1]))
    result = {"distance": round(distance, 4), "same": bool(calibration.is_same(distance)),
              "probability": round(float(calibration.predict_proba([distance], args.prior)[0]), 6),
              "threshold": round(calibration.threshold_, 4), "model": calibration.model_id,
              "faces": [int(n) for n in faces["n_faces"]]}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{'same person' if result['same'] else 'different people'}: distance {distance:.3f} "
              f"(threshold {calibration.threshold_:.3f}, {calibration.model_id}), probability of the same "
              f"person {result['probability']:.6g} at prior {args.prior:g}")
    return 0


def settings_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--markdown", action="store_true", help="the table docs/settings.md holds")


def settings(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from facecluster.core.settings import settings_reference

    reference = settings_reference()
    if args.markdown:
        print(reference, end="")
    else:
        for line in reference.splitlines()[2:]:
            key, default, what = (cell.strip().strip("`") for cell in line.strip("|").split(" | "))
            print(f"{key} = {default}\n    {what}")
    return 0

