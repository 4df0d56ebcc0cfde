"""The same job files on a real Spark cluster: a standalone master and two workers on loopback,
started with the pyspark package's own launcher, the executors running Python from the packed
environment that `scripts/pack_env.sh` builds, shipped with `--archives` as the README shows;
the tables equal those of local mode."""
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from facecluster.jobs import cluster, embed, ingest
from tests.compare import assert_same_people, assert_same_tables
from tests.conftest import ARCHIVE, ROOT, spark_submit

pytestmark = [pytest.mark.spark, pytest.mark.slow]

SPARK_CLASS = str(Path(sys.executable).parent / "spark-class")
# conf/cluster.yaml sized down to two 1-core workers on this machine.
SMALL_EXECUTORS = ["--set", "spark.conf.spark.executor.cores=1", "--set", "spark.conf.spark.executor.memory=1g",
                   "--set", "spark.conf.spark.executor.memoryOverhead=1g", "--set", "spark.conf.spark.driver.memory=1g",
                   "--set", "spark.conf.spark.sql.shuffle.partitions=4"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_line(log: Path, text: str, count: int = 1, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and log.read_text(errors="replace").count(text) >= count:
            return
        time.sleep(0.3)
    raise AssertionError(f"{log.name} never said {text!r}:\n{log.read_text(errors='replace')[-3000:]}")


@pytest.fixture(scope="module")
def standalone(tmp_path_factory):
    """spark://127.0.0.1:PORT with two workers of one core each; every process stopped after."""
    home = tmp_path_factory.mktemp("standalone")
    # No Python on the workers' path: an executor can only run the one its application ships.
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": str(home / "no-python-here")}
    port = _free_port()
    started = []

    def launch(name, *args):
        log = home / f"{name}.log"
        process = subprocess.Popen([SPARK_CLASS, *args], env=env, cwd=home, start_new_session=True,
                                   stdout=log.open("w"), stderr=subprocess.STDOUT)
        started.append(process)
        return log

    try:
        master_log = launch("master", "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                            "--port", str(port), "--webui-port", str(_free_port()))
        _wait_for_line(master_log, "I have been elected leader")
        url = f"spark://127.0.0.1:{port}"
        for i in (1, 2):
            launch(f"worker{i}", "org.apache.spark.deploy.worker.Worker", url, "--host", "127.0.0.1",
                   "--cores", "1", "--memory", "3g", "--webui-port", str(_free_port()),
                   "--work-dir", str(home / f"work{i}"))
        _wait_for_line(master_log, "Registering worker", count=2)
        yield url, master_log, home
    finally:
        for process in started:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in started:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        assert all(p.poll() is not None for p in started)


@pytest.fixture(scope="module")
def packed_env(pytestconfig):
    """scripts/pack_env.sh's archive (a fresh venv with the package installed from this checkout),
    built in the background from the start of the test run (tests/conftest.py)."""
    path, process = pytestconfig.packed_env
    assert process.wait(timeout=1800) == 0, \
        f"pack_env.sh failed:\n{(path.parent / 'pack.log').read_text()[-4000:]}"
    return path


def _executor_environments(home: Path) -> list[Path]:
    return sorted(home.glob("work*/app-*/*/env"))


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    root = tmp_path_factory.mktemp("cluster_photos") / "photos"
    for album in ("2019_birthday", "2021_wedding"):
        shutil.copytree(ARCHIVE / album, root / album)
    return root


def test_ingest_embed_cluster_on_a_standalone_cluster_equal_local_mode(standalone, packed_env, archive, spark,
                                                                        settings, tmp_path):
    url, master_log, home = standalone
    out = tmp_path / "cluster_run"
    common = ["--out", str(out), "--config", str(ROOT / "conf" / "cluster.yaml"), *SMALL_EXECUTORS]
    ship = ["--archives", f"{packed_env}#env", "--conf", "spark.pyspark.python=./env/bin/python",
            "--conf", f"spark.pyspark.driver.python={sys.executable}"]
    printed = {}
    for job, extra in [("ingest", [str(archive)]), ("embed", ["--embedder", "dlib"]), ("cluster", [])]:
        printed[job] = spark_submit(job, [*extra, *common], url, tmp_path, extra=ship)
        # Each executor unpacked the environment into its own folder and ran Python from there.
        unpacked = _executor_environments(home)
        assert unpacked and all((env / "bin" / "python").is_file() for env in unpacked), job
        logs = [p.read_text(errors="replace") for p in home.glob("work*/app-*/*/stderr")]
        assert any(f"{packed_env.name}#env" in log and "Unpacking an archive" in log for log in logs), job
        for env in unpacked:  # 7 GB each: the finished application's copies go before the next
            shutil.rmtree(env)
    assert "ingest: 16 photos" in printed["ingest"]
    # The applications really ran on the cluster: the master granted executors on both workers.
    log = master_log.read_text(errors="replace")
    assert log.count("Registering app facecluster") >= 3
    assert "Launching executor" in log

    local = tmp_path / "local_run"
    ingest.ingest(spark, str(archive), str(local))
    embed.embed(spark, str(local), settings["embed"], None)
    cluster.cluster(spark, str(local), settings["cluster"])
    assert_same_tables(out, local)
    assert_same_people(out, local)
