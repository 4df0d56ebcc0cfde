import os
from pathlib import Path

import pytest

from facecluster.core.runtime import driver_cpus
from facecluster.core.settings import SettingsError, load_settings, parse_override


def test_default_settings_load_and_are_checked():
    settings = load_settings()
    assert settings["spark"]["master"] == "local[*,4]"
    assert settings["embed"]["embedder"] == "auto"
    assert settings["embed"]["detection_thresholds"] == [0.6, 0.7, 0.7]
    assert settings["spark"]["conf"]["spark.sql.execution.arrow.maxRecordsPerBatch"] == "16"


@pytest.mark.parametrize("override, named", [
    ("embed.embeder=dlib", "embed.embeder"),               # a typo is an unknown setting
    ("embed.embedder=arcface", "embed.embedder"),          # not a known model
    ("embed.max_canvas=10", "embed.max_canvas"),           # too small to find a face
    ("embed.min_det_score=1.5", "embed.min_det_score"),
    ("embed.torch_threads=0", "embed.torch_threads"),
    ("embed.detection_thresholds=[0.6, 0.7]", "embed.detection_thresholds"),
    ("embed.facenet_weights=/nowhere/weights.pt", "embed.facenet_weights"),
    ("cluster.min_cluster_size=1", "cluster.min_cluster_size"),
    ("cluster.min_samples=5", "cluster.min_samples"),     # more than min_cluster_size
    ("cluster.cluster_selection_method=best", "cluster.cluster_selection_method"),
    ("spark.conf={'memory': '4g'}", "spark.conf"),
])
def test_a_wrong_setting_stops_with_its_name(override, named):
    with pytest.raises(SettingsError, match=named.replace(".", r"\.")):
        load_settings(overrides=[override])


def test_a_wrong_value_is_blamed_on_where_it_came_from(tmp_path):
    with pytest.raises(SettingsError, match=r"max_canvas = -5 in --set"):
        load_settings(overrides=["embed.max_canvas=-5"])
    mine = tmp_path / "mine.yaml"
    mine.write_text("embed:\n  max_canvas: -5\n")
    with pytest.raises(SettingsError, match=f"max_canvas = -5 in {mine}"):
        load_settings(mine)
    with pytest.raises(SettingsError, match=r"max_canvas = -5 in --set"):
        load_settings(tmp_path / "mine.yaml", ["embed.max_canvas=-5"])


def test_a_settings_file_that_would_expand_is_refused_at_once(tmp_path):
    """A YAML bomb: 837 bytes of nested aliases took 2.6 GB before it was refused."""
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for name, previous in zip("bcdefghi", "abcdefgh"):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{previous}"] * 9) + "]")
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(lines) + "\n")
    with pytest.raises(SettingsError, match="aliases"):
        load_settings(bomb)


def test_overrides_are_read_as_yaml_values():
    assert parse_override("embed.max_canvas=800") == ("embed.max_canvas", 800)
    assert parse_override("embed.facenet_weights=null") == ("embed.facenet_weights", None)
    settings = load_settings(overrides=["embed.max_canvas=800", "spark.conf.spark.driver.memory=2g"])
    assert settings["embed"]["max_canvas"] == 800
    assert settings["spark"]["conf"]["spark.driver.memory"] == "2g"


def test_a_missing_or_broken_config_file_is_named(tmp_path):
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings(tmp_path / "nope.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("embed: [unclosed")
    with pytest.raises(SettingsError, match="not valid YAML"):
        load_settings(broken)


@pytest.mark.parametrize("name", ["cluster.yaml", "gpu.yaml"])
def test_every_shipped_config_is_valid(name):
    load_settings(Path(__file__).resolve().parent.parent / "conf" / name)


def test_a_users_file_holds_only_what_it_changes(tmp_path):
    mine = tmp_path / "mine.yaml"
    mine.write_text("cluster:\n  min_cluster_size: 3\nspark:\n  conf:\n    spark.driver.memory: 9g\n"
                    "    spark.ui.enabled: null\n")
    settings = load_settings(mine, overrides=["cluster.min_samples=3"])
    defaults = load_settings()
    assert settings["cluster"]["min_cluster_size"] == 3 and settings["cluster"]["min_samples"] == 3
    assert settings["embed"] == defaults["embed"]  # everything else from the defaults
    assert settings["spark"]["conf"]["spark.driver.memory"] == "9g"
    assert "spark.ui.enabled" not in settings["spark"]["conf"]  # null drops a default property
    assert settings["spark"]["conf"]["spark.sql.shuffle.partitions"] == defaults["spark"]["conf"][
        "spark.sql.shuffle.partitions"]


def test_an_unknown_key_names_the_nearest_known_one(tmp_path):
    mine = tmp_path / "mine.yaml"
    mine.write_text("cluster:\n  min_cluster_sise: 3\n")
    with pytest.raises(SettingsError, match=r"unknown setting cluster\.min_cluster_sise in .*mine\.yaml; "
                                            r"did you mean cluster\.min_cluster_size\?"):
        load_settings(mine)
    with pytest.raises(SettingsError, match=r"did you mean embed\.max_canvas\?"):
        load_settings(overrides=["embed.max_canvass=800"])


def test_the_cli_refuses_a_wrong_setting_before_starting_spark(capsys):
    from facecluster.cli import main

    with pytest.raises(SystemExit) as stop:
        main(["run", "samples/archive", "--out", "/tmp/never-written", "--set", "embed.max_canvas=-3"])
    assert stop.value.code == 2
    assert "embed.max_canvas" in capsys.readouterr().err


@pytest.mark.parametrize("conf, cpus", [
    ({"spark.master": "local[*,4]"}, 16),
    ({"spark.master": "local[2]"}, 2),
    ({"spark.master": "local[64,4]"}, 16),          # never more than the machine has
    ({"spark.master": "local"}, 1),
    ({"spark.master": "yarn"}, 16),                  # client mode: the submitting machine
    ({"spark.master": "yarn", "spark.submit.deployMode": "cluster"}, 1),
    ({"spark.master": "k8s://https://api:443", "spark.submit.deployMode": "cluster", "spark.driver.cores": "4"}, 4),
])
def test_the_driver_clusters_with_its_own_share_of_cpus(conf, cpus):
    assert driver_cpus(conf, available=16) == cpus


def test_the_driver_sets_its_threads_from_its_share(spark):
    import numba
    import torch

    from facecluster.core.runtime import use_driver_cpus

    torch.set_num_threads(7)
    numba.set_num_threads(1)
    share = min(2, len(os.sched_getaffinity(0)))  # the test session runs local[2]
    assert use_driver_cpus(spark) == share
    assert torch.get_num_threads() == share
    assert numba.get_num_threads() == min(share, numba.config.NUMBA_NUM_THREADS)


def test_the_settings_reference_is_generated_from_the_declarations():
    from facecluster.core.settings import RULES, settings_reference

    reference = settings_reference()
    assert all(f"`{key}`" in reference for key in RULES)
    written = (Path(__file__).resolve().parent.parent / "docs" / "settings.md").read_text()
    assert written.endswith(reference), "docs/settings.md is stale: regenerate with `facecluster settings --markdown`"


def _listening_addresses(port: int) -> set[str]:
    """The local addresses listening on a TCP port, from /proc/net (hex, as the kernel writes them)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as handle:
            for line in handle.read().splitlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                address, hex_port = local.split(":")
                if state == "0A" and int(hex_port, 16) == port:
                    found.add(address)
    return found


def test_in_local_mode_spark_listens_on_this_machine_only(spark):
    """The Spark UI shows archive paths: in local mode nothing on the network needs it."""
    from urllib.parse import urlsplit

    ui = urlsplit(spark.sparkContext.uiWebUrl)
    assert ui.hostname == "127.0.0.1"
    loopback = {"0100007F", "0000000000000000FFFF00000100007F", "00000000000000000000000001000000"}
    addresses = _listening_addresses(ui.port)
    assert addresses and addresses <= loopback, addresses
    assert spark.conf.get("spark.driver.bindAddress") == "127.0.0.1"


def test_a_settings_file_is_read_through_hadoop_file_systems(spark, tmp_path):
    """--config hdfs://... or s3a://...: read where the driver runs, through Hadoop (file: here)."""
    mine = tmp_path / "mine.yaml"
    mine.write_text("embed:\n  max_canvas: 800\n")
    assert load_settings(f"file://{mine}")["embed"]["max_canvas"] == 800
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings(f"file://{tmp_path}/nowhere.yaml")
