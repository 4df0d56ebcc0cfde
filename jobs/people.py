"""people: the person x album view, the first answer to "who appears in which albums".

Writes `person_albums` (one row per person and album: faces and photos of them there) and
prints the people seen in more than one album first, then the rest by size.

    spark-submit jobs/people.py --out OUT
"""
from __future__ import annotations

import argparse
import sys

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from facecluster.core.catalogue import PEOPLE
from facecluster.core.job_arguments import job_parser
from facecluster.core.runtime import parse_job_arguments, user_errors
from facecluster.output.session import job_session
from facecluster.grouping.people_tables import write_person_albums


def people_by_albums(people: DataFrame, by_album: DataFrame) -> DataFrame:
    """One row per person: the albums they appear in, people in most albums first."""
    albums = by_album.groupBy("person_id").agg(
        F.count("album").alias("n_albums"),
        F.sort_array(F.collect_list(F.struct("album", "n_faces"))).alias("faces_by_album"))
    return (people.select("person_id", "name", "n_faces", "n_photos", "exemplar_face_id")
            .join(albums, "person_id", "left")
            .withColumn("n_albums", F.coalesce("n_albums", F.lit(0)))
            .orderBy(F.desc("n_albums"), F.desc("n_faces"), "person_id"))


def format_view(rows, limit: int = 20) -> str:
    lines = [f"{'person':>6}  {'name':<16} {'faces':>5} {'albums':>6}  albums (faces)"]
    for row in rows[:limit]:
        where = ", ".join(f"{a['album'] or '(root)'} ({a['n_faces']})" for a in (row["faces_by_album"] or []))
        lines.append(f"{row['person_id']:>6}  {(row['name'] or '-'):<16} {row['n_faces']:>5} {row['n_albums']:>6}  {where}")
    if len(rows) > limit:
        lines.append(f"... and {len(rows) - limit} more people")
    return "\n".join(lines)


def people_view(spark: SparkSession, out: str) -> DataFrame:
    return people_by_albums(spark.read.parquet(PEOPLE.path(out)), write_person_albums(spark, out))


def build_parser() -> argparse.ArgumentParser:
    return job_parser("people", __doc__)


@user_errors
def main(argv: list[str] | None = None) -> int:
    args, settings = parse_job_arguments(build_parser(), argv)
    with job_session(settings, args.out, "people") as spark:
        print(format_view(people_view(spark, args.out).collect()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
