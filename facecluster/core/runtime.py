"""What every job shares: its command-line arguments, the Spark session, the table paths."""
from __future__ import annotations

import argparse
import contextlib
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


def submitted_conf() -> dict[str, str] | None:
    """Under spark-submit, the Spark properties the user gave it (--conf, --name, --master,
    spark-defaults.conf), read from the JVM spark-submit started; None when not under it."""
    if "PYSPARK_GATEWAY_PORT" not in os.environ:
        return None
    from pyspark import SparkConf, SparkContext

    SparkContext._ensure_initialized()  # joins spark-submit's JVM; starts nothing
    return dict(SparkConf().getAll())


def start_spark(settings: dict, step: str | None = None):
    """The Spark session for a job. Under spark-submit, what the user gave Spark wins: the
    package's properties fill only what is unset, and the application is named after the step
    unless --name named it. Run as a plain program (facecluster run ...) it is conf's
    spark.master, on this machine's loopback address only (the UI and the driver show archive
    paths: nothing on the network needs them in local mode)."""
    # Python workers must run this interpreter, or they start a system Python without the packages.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    given = submitted_conf()
    under_spark_submit = given is not None
    name = settings["spark"]["app_name"] + (f" {step}" if step else "")
    conf = dict(settings["spark"]["conf"])
    level = settings["spark"]["log_level"]
    builder = SparkSession.builder
    if under_spark_submit:
        script = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
        if given.get("spark.app.name") not in (None, "", script):  # spark-submit names an app after its script
            name = given["spark.app.name"]
        conf = {key: value for key, value in conf.items() if key not in given}
    else:
        builder = builder.master(settings["spark"]["master"])
        if settings["spark"]["master"].startswith("local"):
            # The UI binds where SPARK_LOCAL_IP says (every interface when unset), the driver where
            # spark.driver.bindAddress says.
            os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
            conf.setdefault("spark.driver.bindAddress", "127.0.0.1")
            conf.setdefault("spark.driver.host", "127.0.0.1")
        if level == "error":  # quiet from the JVM's first line, not only after the session exists
            quiet = f"-Dlog4j2.configurationFile={QUIET_LOG}"
            conf["spark.driver.extraJavaOptions"] = f"{conf.get('spark.driver.extraJavaOptions', '')} {quiet}".strip()
    builder = builder.appName(name)
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(level.upper())
    if step:
        describe(spark, step)
    address = spark.sparkContext.uiWebUrl
    if address and not under_spark_submit:
        print(f"Spark UI: {address}", flush=True)
    return spark


def describe(spark, step: str, detail: str = "") -> None:
    """What the Spark UI shows for the jobs that follow: the step, and what it works on."""
    spark.sparkContext.setJobDescription(f"facecluster {step}" + (f": {detail}" if detail else ""))


@contextlib.contextmanager
def batches_of_faces(spark, rows: int = 10_000):
    """Arrow batches of `rows` rows while a step hands faces' numbers to Python. The batch size set
    for photos (16 rows of megabytes each) would cut a million faces into 60,000 batches, each
    paying Python's cost per batch: the quality gate on 300,000 faces took 5 times as long."""
    key = "spark.sql.execution.arrow.maxRecordsPerBatch"
    photos = spark.conf.get(key)
    spark.conf.set(key, str(rows))
    try:
        yield
    finally:
        spark.conf.set(key, photos)


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
