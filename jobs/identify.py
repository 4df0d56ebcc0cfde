"""identify: the `faces` table + a gallery of named people -> `identities` (a name or "unknown" per face).

The gallery is small (named people, a few photos each): it is embedded on the driver and
broadcast; each executor compares its faces with every enrolled face. A face is named only when
the identifier accepts it (nearest neighbour within the model's verification threshold, or an
SVM probability); strangers come out "unknown" (facecluster/recognition/identification.py).

    spark-submit jobs/identify.py --out OUT --gallery GALLERY_FOLDER [--method nearest|svm]
"""
from __future__ import annotations

import argparse
import sys
from typing import Iterator

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession

from facecluster.core.catalogue import FACES, IDENTITIES
from facecluster.core.job_arguments import add_identifier_arguments, add_settings_arguments
from facecluster.core.run_reader import run_models
from facecluster.core.runtime import parse_job_arguments, user_errors
from facecluster.output.session import job_session
from facecluster.core.tables import write_table



def extract_faces(spark: SparkSession, out: str) -> DataFrame:
    return spark.read.parquet(FACES.path(out)).select("face_id", "embedding", "model")


def identify_faces(faces: DataFrame, identifier, model_id: str) -> DataFrame:
    """face_id, name ("unknown" when no enrolled person is close enough), probability, distance."""
    shared = faces.sparkSession.sparkContext.broadcast(identifier)

    def name_batches(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        model = shared.value
        for batch in batches:
            if (batch["model"] != model_id).any():
                wrong = batch.loc[batch["model"] != model_id, "model"].iloc[0]
                raise ValueError(f"faces embedded by {wrong} cannot be compared with a gallery embedded by {model_id}")
            names = model.predict(np.stack(batch["embedding"].to_numpy()).astype(np.float32)) if len(batch) else []
            yield pd.DataFrame({"face_id": batch["face_id"], "name": names,
                                "probability": getattr(model, "probability_", np.full(len(batch), np.nan)),
                                "distance": getattr(model, "distance_", np.full(len(batch), np.nan)),
                                "model": model_id})

    return faces.mapInPandas(name_batches, IDENTITIES.schema)


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="jobs/identify.py", description=__doc__,
                                               formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="output root of a run with a faces table")
    parser.add_argument("--gallery", required=True, help="folder with one sub-folder of photos per named person")
    add_identifier_arguments(parser)
    add_settings_arguments(parser, embedder=True)
    return parser


@user_errors
def main(argv: list[str] | None = None) -> int:
    from facecluster.recognition.identification import gallery_from_folder, identifier_for
    from facecluster.recognition.verification import calibration_for
    from facecluster.udfs.embedders import resolve_embedder

    parser = build_parser()
    args, settings = parse_job_arguments(parser, argv)
    try:
        embed_settings, weights = resolve_embedder(settings["embed"], run_models(args.out))
        gallery, _ = gallery_from_folder(args.gallery, embed_settings, weights)
        identifier = identifier_for(args.method, calibration_for(embed_settings), args.max_distance,
                                    args.min_probability, args.far)
        identifier.fit(gallery.embeddings, gallery.names)
    except (OSError, ValueError, LookupError, RuntimeError) as exc:
        parser.exit(2, f"identify: {exc}\n")
    with job_session(settings, args.out, "identify") as spark:
        written = write_table(identify_faces(extract_faces(spark, args.out), identifier, gallery.model_id),
                              args.out, IDENTITIES.name)
        counts = spark.read.parquet(written).groupBy("name").count().orderBy("count", ascending=False).collect()
    print(f"{gallery.people} people enrolled from {len(gallery.names)} photos; faces named in {written}:")
    for row in counts:
        print(f"  {row['name']:<24} {row['count']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
