"""Embed speed, side by side on the same photos in one run.

    .venv/bin/python benchmarks/embed_speed.py [--photos 300] [--repeats 3] [--embedders dlib facenet]
    python3 benchmarks/embed_speed.py --embedders facenet --ways naive inprocess --data DIR   # on a GPU machine without Spark

For each embedder, on 300 LFW photos plus the group photos of ../shared/data/photos/groups:

  (a) naive: the loop facenet-pytorch's README shows, one photo at a time: open it, run MTCNN
      on it, embed its faces (torch's default threads, full-size photo);
  (b) spark: the embed job (jobs/embed.py) in Spark local mode with conf/local.yaml;
  (c) in-process: the same executor code (udfs.embed_photos) in one Python process without
      Spark, torch using every core.

On a machine with a GPU, (a) and (c) run their models there (facenet-pytorch's README moves
MTCNN and the network to the GPU; the executor code takes the GPU by embed.device: auto).

Each runs in a fresh child process (memory is that process tree's peak RSS, sampled every
0.1 s, JVM included for (b)); the timed part starts after imports and the Spark session and
includes loading the models. Figures are medians over --repeats runs, interleaved a, b, c.
The FaceNet network runs on random weights here: speed does not depend on them.

Then the embedder alone against this CPU's bound: sustained fp32 GFLOP/s measured by a large
matrix product, against InceptionResnetV1's 2.84 GFLOP per 160x160 face.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data"
FACENET_GFLOP = 2.84  # per 160x160 face, InceptionResnetV1


def chosen_photos(lfw: Path, groups: Path, count: int) -> list[Path]:
    everyone = sorted(lfw.glob("*/*.jpg"))
    step = max(1, len(everyone) // count)
    return everyone[::step][:count] + sorted(groups.glob("*.jpg"))


# ---------------------------------------------------------------- children (one way each)

def _random_facenet_weights(work: Path) -> str:
    import torch
    from facenet_pytorch import InceptionResnetV1

    path = work / "random-facenet.pt"
    if not path.exists():
        torch.manual_seed(0)
        torch.save(InceptionResnetV1(pretrained=None, classify=False).state_dict(), path)
    return str(path)


def naive(files: list[Path], embedder: str, work: Path) -> dict:
    """facenet-pytorch README style: mtcnn(img) then the network, photo by photo."""
    import torch
    from facenet_pytorch import MTCNN
    from PIL import Image

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    started = time.perf_counter()
    faces = 0
    if embedder == "facenet":
        from facecluster.udfs.facenet import load_facenet

        mtcnn = MTCNN(image_size=160, margin=20, keep_all=True, device=device)
        resnet = load_facenet(Path(_random_facenet_weights(work)), device)
        for path in files:
            img = Image.open(path).convert("RGB")
            crops = mtcnn(img)
            if crops is not None:
                with torch.no_grad():
                    faces += len(resnet(crops.to(device)))
    else:
        import numpy as np

        from facecluster.udfs.dlib_resnet import DlibEmbedder, load_dlib_reference

        # dlib as its users run it: its landmarks, its chip and its own network, face by face;
        # the same work as the embedder (HOG box, the chip and its mirror image)
        mtcnn = MTCNN(keep_all=True, device=device)
        cutter, network = DlibEmbedder(), load_dlib_reference()
        for path in files:
            img = Image.open(path).convert("RGB")
            boxes, _, points = mtcnn.detect(img, landmarks=True)
            pixels = np.asarray(img)
            for box, marks in zip(boxes if boxes is not None else [], points if points is not None else []):
                views = cutter.chip(pixels, box, marks)  # the chips of both boxes
                network.compute_face_descriptor([*views, *(np.ascontiguousarray(v[:, ::-1]) for v in views)])
                faces += 1
    return {"seconds": time.perf_counter() - started, "faces": faces}


def inprocess(files: list[Path], embedder: str, work: Path) -> dict:
    """The executors' code, fed pandas batches as mapInPandas would, without Spark."""
    import hashlib

    import pandas as pd
    import torch

    from facecluster.core.settings import load_settings
    from facecluster.udfs.embed_photos import embed_photo_batches

    settings = load_settings(overrides=[f"embed.embedder={embedder}",
                                        f"embed.torch_threads={os.cpu_count()}"])["embed"]
    weights = _random_facenet_weights(work) if embedder == "facenet" else None
    batch = int(load_settings()["spark"]["conf"]["spark.sql.execution.arrow.maxRecordsPerBatch"])
    started = time.perf_counter()
    rows = []
    for path in files:
        content = path.read_bytes()
        rows.append({"photo_id": hashlib.sha256(content).hexdigest(), "album": path.parent.name,
                     "path": str(path), "content": content})
    frames = (pd.DataFrame(rows[i:i + batch]) for i in range(0, len(rows), batch))
    faces = sum(int(out["n_faces"].sum()) for out in embed_photo_batches(frames, settings, weights))
    assert torch.get_num_threads() == os.cpu_count()
    return {"seconds": time.perf_counter() - started, "faces": faces}


def stages(files: list[Path], embedder: str, work: Path) -> dict:
    """In-process, with each stage timed: the worker's detector and embedder (cached per worker,
    so the job's own code then uses these very objects) wrapped with clocks."""
    import torch

    from facecluster.core.settings import load_settings
    from facecluster.udfs.embedders import set_threads, worker_models

    settings = load_settings(overrides=[f"embed.embedder={embedder}",
                                        f"embed.torch_threads={os.cpu_count()}"])["embed"]
    set_threads(settings["torch_threads"])
    detector, model = worker_models(settings, _random_facenet_weights(work) if embedder == "facenet" else None)
    spent = {"detect": 0.0, "chip": 0.0, "embed": 0.0}

    def clocked(name, method):
        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                spent[name] += time.perf_counter() - started
        return timed

    detector.detect = clocked("detect", detector.detect)
    model.chip = clocked("chip", model.chip)
    model.embed = clocked("embed", model.embed)
    result = inprocess(files, embedder, work)
    assert torch.get_num_threads() == os.cpu_count()
    result["stages"] = {**spent, "decode, thumbnails and the rest": result["seconds"] - sum(spent.values())}
    return result


def spark(files: list[Path], embedder: str, work: Path) -> dict:
    """The embed job in local mode with conf/local.yaml, on a photos table ingested beforehand."""
    from facecluster.core.runtime import start_spark
    from facecluster.core.settings import load_settings
    from facecluster.jobs import embed

    overrides = [f"embed.embedder={embedder}"]
    weights = None
    if embedder == "facenet":
        weights = _random_facenet_weights(work)
        overrides.append(f"embed.facenet_weights={weights}")
    settings = load_settings(overrides=overrides)
    session = start_spark(settings)
    out = Path(tempfile.mkdtemp(dir=work))
    shutil.copytree(work / "ingested" / "photos", out / "photos")
    started = time.perf_counter()
    embed.embed(session, str(out), settings["embed"], weights)
    seconds = time.perf_counter() - started
    faces = int(session.read.parquet(str(out / "photo_status")).groupBy().sum("n_faces").first()[0])
    session.stop()
    shutil.rmtree(out)
    return {"seconds": seconds, "faces": faces}


def _median_seconds(action, runs: int) -> float:
    import statistics

    action()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def flops(_files, _embedder, _work) -> dict:
    """This CPU's sustained fp32 GFLOP/s, and InceptionResnetV1 faces/s, all cores.

    Two measures of the machine, the better one is the bound: a 4096^3 matrix product (MKL)
    and a 3x3 convolution, 256 channels at 56x56 (oneDNN, channels-last). On AMD CPUs MKL
    takes a slower path, so the convolution is the fairer measure there."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from facecluster.udfs.facenet import CHIP_SIZE, load_facenet
    from facecluster.udfs.inference import for_cpu_inference

    torch.set_num_threads(os.cpu_count())
    n = 4096
    a, b = torch.randn(n, n), torch.randn(n, n)
    matmul = 2 * n ** 3 / _median_seconds(lambda: a @ b, 10) / 1e9
    conv = torch.nn.Conv2d(256, 256, 3, padding=1, bias=False).eval().to(memory_format=torch.channels_last)
    x = torch.randn(16, 256, 56, 56).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        convolution = 2 * 16 * 56 * 56 * 256 * 256 * 9 / _median_seconds(lambda: conv(x), 10) / 1e9

    eager = load_facenet(None, torch.device("cpu"))
    faces = torch.randn(32, 3, CHIP_SIZE, CHIP_SIZE)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        eager(faces[:1])
    frozen = for_cpu_inference(eager, CHIP_SIZE)
    last = faces.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        rates = {"eager": len(faces) / _median_seconds(lambda: eager(faces), 5),
                 "frozen, channels-last (the embed job's)": len(faces) / _median_seconds(lambda: frozen(last), 5)}
    return {"matmul_gflops": matmul, "conv_gflops": convolution, "faces_per_s": rates,
            "counted_gflop": counter.get_total_flops() / 1e9}


WAYS = {"naive": naive, "spark": spark, "inprocess": inprocess, "stages": stages, "flops": flops}


def child_main(way: str, embedder: str, work: str) -> None:
    files = [Path(p) for p in json.loads((Path(work) / "files.json").read_text())]
    print("RESULT " + json.dumps(WAYS[way](files, embedder, Path(work))), flush=True)


# ---------------------------------------------------------------- the parent: runs and prints

def _accelerator() -> str:
    import torch

    return f"GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else "no GPU"


def run_child(way: str, embedder: str, work: Path) -> dict:
    import psutil

    process = subprocess.Popen([sys.executable, __file__, "--child", way, embedder, str(work)],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT)
    peak = 0
    stop = threading.Event()

    def sample():
        nonlocal peak
        root = psutil.Process(process.pid)
        while not stop.is_set():
            try:
                tree = [root, *root.children(recursive=True)]
                peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
            except psutil.Error:
                pass
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output, _ = process.communicate()
    stop.set()
    sampler.join()
    if process.returncode != 0:
        raise RuntimeError(f"{way}/{embedder} failed:\n{output[-3000:]}")
    result = json.loads(next(line for line in output.splitlines() if line.startswith("RESULT "))[7:])
    return {**result, "peak_mb": peak / 2 ** 20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=300, help="LFW photos (the group photos are added)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--embedders", nargs="+", default=["dlib", "facenet"])
    parser.add_argument("--ways", nargs="+", default=["naive", "spark", "inprocess"],
                        choices=["naive", "spark", "inprocess", "stages"])
    parser.add_argument("--data", default=str(SHARED), help="folder holding lfw/ and photos/groups/")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child_main(*args.child)

    import statistics

    data = Path(args.data)
    files = chosen_photos(data / "lfw", data / "photos" / "groups", args.photos)
    with tempfile.TemporaryDirectory() as work_dir:
        work = Path(work_dir)
        (work / "files.json").write_text(json.dumps([str(p) for p in files]))
        archive = work / "archive"
        for path in files:
            (archive / path.parent.name).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, archive / path.parent.name / path.name)
        if "spark" in args.ways:
            subprocess.run([str(ROOT / ".venv" / "bin" / "facecluster"), "ingest", str(archive),
                            "--out", str(work / "ingested")], check=True, capture_output=True)
        print(f"{len(files)} photos ({args.photos} LFW + {len(files) - args.photos} group photos), "
              f"{os.cpu_count()} cores, {_accelerator()}, medians of {args.repeats} runs\n")
        print(f"{'embedder':<8} {'way':<10} {'photos/s':>9} {'faces/s':>8} {'faces':>6} {'peak MB':>8} {'seconds':>8}")
        for embedder in args.embedders:
            runs = {way: [] for way in args.ways}
            for _ in range(args.repeats):
                for way in runs:  # interleaved, so that a noisy minute hurts all three alike
                    runs[way].append(run_child(way, embedder, work))
            median = {way: {k: statistics.median(r[k] for r in rs) for k in ("seconds", "faces", "peak_mb")}
                      for way, rs in runs.items()}
            for way, m in median.items():
                print(f"{embedder:<8} {way:<10} {len(files) / m['seconds']:>9.2f} {m['faces'] / m['seconds']:>8.2f} "
                      f"{m['faces']:>6.0f} {m['peak_mb']:>8.0f} {m['seconds']:>8.1f}")
            if "stages" in runs:
                names = runs["stages"][0]["stages"]
                spent = {n: statistics.median(r["stages"][n] for r in runs["stages"]) for n in names}
                print(f"{embedder:<8} stages (in-process): " + ", ".join(
                    f"{n} {v:.1f} s ({v / sum(spent.values()):.0%})" for n, v in spent.items()))
            if {"naive", "spark", "inprocess"} <= set(median):
                print(f"{embedder:<8} ratios: b/a (spark vs naive) {median['naive']['seconds'] / median['spark']['seconds']:.2f}"
                      f" (target >= 3), b/c (spark vs in-process) "
                      f"{median['inprocess']['seconds'] / median['spark']['seconds']:.2f} (target >= 0.85)\n")
            elif {"naive", "inprocess"} <= set(median):
                print(f"{embedder:<8} ratio c/a (executor code vs naive) "
                      f"{median['naive']['seconds'] / median['inprocess']['seconds']:.2f}\n")
        if "spark" not in args.ways:
            return
        bound = run_child("flops", "-", work)
        gflops = max(bound["matmul_gflops"], bound["conv_gflops"])
        print(f"CPU, {os.cpu_count()} threads: sustained fp32 {bound['matmul_gflops']:.0f} GFLOP/s by a 4096^3 matrix "
              f"product (MKL), {bound['conv_gflops']:.0f} GFLOP/s by a 3x3 convolution (oneDNN); "
              f"bound {gflops:.0f} GFLOP/s / {FACENET_GFLOP} = {gflops / FACENET_GFLOP:.0f} faces/s")
        print(f"InceptionResnetV1 per 160x160 face: {FACENET_GFLOP} GFLOP as given; torch's FLOP counter says "
              f"{bound['counted_gflop']:.2f} GFLOP")
        for layout, rate in bound["faces_per_s"].items():
            print(f"InceptionResnetV1 alone, batch 32, {layout}: {rate:.1f} faces/s = "
                  f"{rate * FACENET_GFLOP / gflops:.0%} of the bound (target >= 70%)")

if __name__ == "__main__":
    main()
