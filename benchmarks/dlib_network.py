"""dlib's face network: dlib itself against the torch module read from its file, on the same
chips, side by side in one run; equality, faces/s, peak memory, and this CPU's bound.

    .venv/bin/python benchmarks/dlib_network.py [--faces 1000] [--repeats 3]

Chips: the first face of every n-th LFW photo, found and cut as the embed job does (MTCNN, dlib's
5-point landmarks in the HOG-like box, dlib's 150x150 chip); cached in .cache/.
Variants, each in a fresh child process (peak RSS of that process), torch on every core:
  dlib          dlib.face_recognition_model_v1.compute_face_descriptor, all chips in one call
  eager         the torch module as built, batches of 32
  traced+frozen the embed job's: traced, frozen and optimised for oneDNN, channels-last
Bound: FLOPs per face from torch's FlopCounterMode over this CPU's best measured convolution
rate (3x3 convolutions of the network's own shapes, batch 32, channels-last, oneDNN).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
LFW = ROOT.parent / "shared" / "data" / "lfw"
BATCH = 32


def cut_chips(count: int, cache: Path) -> np.ndarray:
    if cache.exists():
        return np.load(cache)
    import torch

    from facecluster.core.settings import load_settings
    from facecluster.udfs.decode import decode_photo
    from facecluster.udfs.detector import FaceDetector
    from facecluster.udfs.dlib_resnet import DlibEmbedder

    settings = load_settings(overrides=["embed.embedder=dlib"])["embed"]
    detector = FaceDetector(torch.device("cpu"), settings["max_canvas"], settings["min_face_size"],
                            settings["detection_thresholds"], settings["min_det_score"])
    cutter = DlibEmbedder(four_views=False)  # one chip a face: the network against dlib on it
    photos = sorted(LFW.glob("*/*.jpg"))
    chips = []
    for path in photos[::max(1, len(photos) // (count + count // 10))]:
        pixels = decode_photo(path.read_bytes(), 200_000_000).pixels
        faces = detector.detect([pixels])[0]
        if faces:
            chips.append(cutter.chip(pixels, faces[0].box, faces[0].landmarks))
        if len(chips) == count:
            break
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.save(cache, np.stack(chips))
    return np.stack(chips)


def _median_rate(action, faces: int, repeats: int) -> float:
    action()  # warm-up: the first call pays for allocation and (frozen) graph optimisation
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return faces / statistics.median(times)


def child(variant: str, cache: Path, repeats: int) -> dict:
    import torch

    torch.set_num_threads(len(os.sched_getaffinity(0)))
    chips = np.load(cache)
    if variant == "dlib":
        from facecluster.udfs.dlib_resnet import load_dlib_reference

        reference = load_dlib_reference()
        listed = list(chips)
        vectors = np.asarray(reference.compute_face_descriptor(listed))
        rate = _median_rate(lambda: reference.compute_face_descriptor(listed[:200]), 200, repeats)
    else:
        from facecluster.udfs.dlib_torch import load_dlib_resnet_torch, network_input
        from facecluster.udfs.inference import for_cpu_inference

        network = load_dlib_resnet_torch()
        batches = [network_input(chips[i:i + BATCH], network.input_means) for i in range(0, len(chips), BATCH)]
        if variant == "traced+frozen":
            network = for_cpu_inference(network, 150)
            batches = [b.contiguous(memory_format=torch.channels_last) for b in batches]

        def run():
            with torch.no_grad():
                return torch.cat([network(b) for b in batches]).numpy()

        vectors = run()
        rate = _median_rate(run, len(chips), repeats)
    return {"rate": rate, "vectors": (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).tolist(),
            "peak_mb": peak_mb()}


def peak_mb() -> float:
    """This process's peak resident memory (VmHWM starts afresh at exec, unlike the rusage a
    parent reads, which keeps the parent's own peak from before the fork)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def bound(repeats: int) -> dict:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from facecluster.udfs.dlib_torch import load_dlib_resnet_torch

    torch.set_num_threads(len(os.sched_getaffinity(0)))
    network = load_dlib_resnet_torch()
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        network(torch.zeros(1, 3, 150, 150))
    rates = {}
    # the network's own 3x3 layers at a batch of 32, and a large layer (256 channels, 56x56,
    # batch 16) where oneDNN runs fastest: the best is the machine's rate
    for channels, size, batch in ((32, 35, BATCH), (64, 17, BATCH), (128, 8, BATCH), (256, 4, BATCH), (256, 56, 16)):
        conv = torch.nn.Conv2d(channels, channels, 3, padding=1).eval().to(memory_format=torch.channels_last)
        x = torch.randn(batch, channels, size, size).contiguous(memory_format=torch.channels_last)
        flop = 2 * batch * size * size * channels * channels * 9
        with torch.inference_mode():
            rates[f"{channels}ch {size}x{size}"] = _median_rate(lambda: conv(x), 1, max(repeats, 10)) * flop / 1e9
    return {"flop_per_face": counter.get_total_flops(), "conv_gflops": rates}


def run_child(variant: str, cache: Path, repeats: int) -> dict:
    """The variant in a fresh process; its result and that process's peak RSS."""
    command = [sys.executable, __file__, "--child", variant, "--cache", str(cache), "--repeats", str(repeats)]
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faces", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cache", default=None)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    cache = Path(args.cache or ROOT / ".cache" / f"dlib_chips_{args.faces}.npy")
    if args.child:
        result = bound(args.repeats) if args.child == "bound" else child(args.child, cache, args.repeats)
        print(json.dumps(result))
        return
    chips = cut_chips(args.faces, cache)
    print(f"{len(chips)} LFW faces cut as the embed job cuts them; torch on {len(os.sched_getaffinity(0))} cores")
    results = {variant: run_child(variant, cache, args.repeats) for variant in ("dlib", "eager", "traced+frozen")}
    machine = run_child("bound", cache, args.repeats)
    best = max(machine["conv_gflops"].values())
    ceiling = best * 1e9 / machine["flop_per_face"]
    reference = np.asarray(results["dlib"]["vectors"])
    print(f"FLOPs per face (torch's counter): {machine['flop_per_face'] / 1e9:.3f} G; convolution rate "
          + ", ".join(f"{k} {v:.0f}" for k, v in machine["conv_gflops"].items())
          + f" GFLOP/s; bound {ceiling:.0f} faces/s")
    print(f"{'variant':<15} {'faces/s':>8} {'x dlib':>7} {'of bound':>9} {'peak MB':>8} {'max |diff| to dlib':>19}")
    for variant, result in results.items():
        gap = np.abs(np.asarray(result["vectors"]) - reference).max()
        print(f"{variant:<15} {result['rate']:8.1f} {result['rate'] / results['dlib']['rate']:7.2f} "
              f"{result['rate'] / ceiling:9.1%} {result['peak_mb']:8.0f} {gap:19.2e}")


if __name__ == "__main__":
    main()
