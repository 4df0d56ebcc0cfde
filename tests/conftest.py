import os
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
ARCHIVE = SAMPLES / "archive"

# Spark's Python workers must run this interpreter (the venv), not the system Python.
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)


@pytest.fixture(scope="session")
def settings():
    from facecluster.core.settings import load_settings

    return load_settings(overrides=["embed.embedder=dlib"])


@pytest.fixture(scope="session")
def spark(settings):
    """One local Spark session for the whole test run (a JVM start costs seconds)."""
    from facecluster.core.runtime import start_spark
    from facecluster.core.settings import with_changes

    session = start_spark(with_changes(settings, {"spark.master": "local[2]"}))
    yield session
    session.stop()


@pytest.fixture(scope="session")
def sample_archive(tmp_path_factory):
    """The sample archive plus a corrupt photo, as a user's archive would hold one."""
    archive = tmp_path_factory.mktemp("archive") / "photos"
    shutil.copytree(ARCHIVE, archive)
    (archive / "2023_holiday" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this upload was cut off")
    return archive


@pytest.fixture(scope="session")
def sample_run(spark, sample_archive, tmp_path_factory):
    """`facecluster run` on the sample archive with the dlib embedder: the output root."""
    from facecluster.cli import main

    out = tmp_path_factory.mktemp("run") / "out"
    assert main(["run", str(sample_archive), "--out", str(out), "--embedder", "dlib",
                 "--set", "spark.master=local[2]"]) == 0
    return out


def spark_submit(job: str, args: list[str], master: str, cwd, extra: list[str] = ()) -> str:
    """Run jobs/<job>.py under spark-submit with the project's interpreter; its stdout."""
    import subprocess

    command = [str(Path(sys.executable).parent / "spark-submit"), "--master", master, *extra,
               str(ROOT / "jobs" / f"{job}.py"), *args]
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"spark-submit {job} failed:\n{done.stderr[-4000:]}"
    return done.stdout


@pytest.fixture(scope="session")
def people_folders(tmp_path_factory):
    """The sample portraits laid out as LFW is: ROOT/person_00/person_00_0001.jpg (labels.csv);
    a photo copied into two albums appears once."""
    import csv
    import hashlib

    root = tmp_path_factory.mktemp("people") / "lfw"
    seen = set()
    with open(SAMPLES / "labels.csv") as handle:
        for row in sorted(csv.DictReader(handle), key=lambda r: (r["person"], r["path"])):
            content = (ARCHIVE / row["path"]).read_bytes()
            if hashlib.sha256(content).hexdigest() in seen:
                continue
            seen.add(hashlib.sha256(content).hexdigest())
            folder = root / row["person"]
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{row['person']}_{len(list(folder.iterdir())) + 1:04d}.jpg").write_bytes(content)
    return root


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session, config, items):
    """The standalone-cluster test ships a packed environment that takes minutes to build (a
    fresh venv, then venv-pack): start building it now, beside the other tests."""
    import subprocess
    import tempfile

    if any(item.nodeid.startswith("tests/test_standalone_cluster.py") for item in items):
        folder = Path(tempfile.mkdtemp(prefix="facecluster-packed-"))
        log = (folder / "pack.log").open("w")
        config.packed_env = (folder / "facecluster-env.tar.gz",
                             subprocess.Popen(["bash", str(ROOT / "scripts" / "pack_env.sh"),
                                               str(folder / "facecluster-env.tar.gz")],
                                              stdout=log, stderr=subprocess.STDOUT))


def pytest_unconfigure(config):
    packed = getattr(config, "packed_env", None)
    if packed is not None:
        path, process = packed
        if process.poll() is None:
            process.kill()
            process.wait()
        shutil.rmtree(path.parent, ignore_errors=True)
