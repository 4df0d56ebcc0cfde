"""What every job shares: its command-line arguments, the Spark session, the table paths."""
from __future__ import annotations

import argparse
import functools
import os
import re
import sys

from facecluster.core.errors import EXIT_STATUS, UserError

QUIET_LOG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "log4j2.properties")
from facecluster.core.settings import SettingsError, load_settings


def settings_from(args: argparse.Namespace) -> dict:
    overrides = list(args.overrides)
    if getattr(args, "embedder", None):
        overrides.append(f"embed.embedder={args.embedder}")
    if getattr(args, "verbose", False):
        overrides.append("spark.log_level=warn")
    return load_settings(args.config, overrides)


def parse_job_arguments(parser: argparse.ArgumentParser, argv: list[str] | None) -> tuple[argparse.Namespace, dict]:
    """Parse arguments and settings; a wrong setting exits here, before Spark starts."""
    args = parser.parse_args(argv)
    try:
        return args, settings_from(args)
    except SettingsError as exc:
        parser.exit(2, f"facecluster: {exc}\n")


def table_path(out: str, table: str) -> str:
    return f"{out.rstrip('/')}/{table}"


def qualified(path: str) -> str:
    """A local path as the absolute file: URI Spark reports; URIs (hdfs://, s3a://) unchanged."""
    if "://" in path or path.startswith("file:"):
        return path.rstrip("/")
    return "file:" + os.path.abspath(path).rstrip("/")


def start_spark(settings: dict):
    """The Spark session for a job. Under spark-submit the master and resources come from
    spark-submit; run as a plain program (facecluster run ...) it is conf's spark.master."""
    # Python workers must run this interpreter, or they start a system Python without the packages.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName(settings["spark"]["app_name"])
    under_spark_submit = "PYSPARK_GATEWAY_PORT" in os.environ
    conf = dict(settings["spark"]["conf"])
    level = settings["spark"]["log_level"]
    if not under_spark_submit:
        builder = builder.master(settings["spark"]["master"])
        if level == "error":  # quiet from the JVM's first line, not only after the session exists
            quiet = f"-Dlog4j2.configurationFile={QUIET_LOG}"
            conf["spark.driver.extraJavaOptions"] = f"{conf.get('spark.driver.extraJavaOptions', '')} {quiet}".strip()
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(level.upper())
    address = spark.sparkContext.uiWebUrl
    if address and not under_spark_submit:
        print(f"Spark UI: {address}", flush=True)
    return spark


def user_errors(main):
    """A command's main() printing a UserError as one line (exit status 2) instead of a traceback."""
    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except UserError as exc:
            print(f"facecluster: {exc}", file=sys.stderr, flush=True)
            raise SystemExit(EXIT_STATUS) from None
    return wrapper


def driver_cpus(conf: dict[str, str], available: int) -> int:
    """CPUs the driver owns for the work it does itself (clustering), from the Spark conf.

    In cluster deploy mode the resource manager gave the driver spark.driver.cores (1 unless
    set), and threads past that share someone else's cores: measured on 2 cores, oversubscribed
    OpenMP threads ran 8x slower. Under local[N] no task runs while the driver clusters, so it
    has the N; in client mode it runs on the submitting machine, whose CPUs are `available`."""
    if conf.get("spark.submit.deployMode", "client") == "cluster":
        return max(1, int(conf.get("spark.driver.cores", "1")))
    master = conf.get("spark.master", "")
    local = re.fullmatch(r"local(?:\[(\*|\d+)(?:,\d+)?\])?", master)
    if local is None:
        return available
    threads = local.group(1) or "1"
    return available if threads == "*" else max(1, min(int(threads), available))


def use_driver_cpus(spark) -> int:
    """Sets torch's, numba's and faiss's thread counts to the driver's share (driver_cpus).
    Called by the jobs that compute on the driver, so that the others do not import them."""
    import faiss
    import numba
    import torch

    conf = dict(spark.sparkContext.getConf().getAll())
    threads = driver_cpus(conf, len(os.sched_getaffinity(0)))
    torch.set_num_threads(threads)
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    faiss.omp_set_num_threads(threads)
    return threads
