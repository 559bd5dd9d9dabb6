"""The GPU check: run training, evaluation, extraction and classification on CUDA on small synthetic data and
ffmpeg-made media, compare each with the CPU, and print throughputs in the units of issue 10's table.

    python bench/gpu_check.py            # on a machine with a CUDA GPU (prints why not and exits 0 without)

CI has no GPU: the same device-agnostic code runs there on the CPU through the test suite.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kda.benchmark import load_benchmark  # noqa: E402
from kda.evaluation import evaluate  # noqa: E402
from kda.knowledge.class_matrix import load_class_matrix  # noqa: E402
from kda.losses import loss_preset  # noqa: E402
from kda.media.backbones import load_backbone  # noqa: E402
from kda.media.pipeline import ExtractOptions, Networks, VisualChunk, extract_many, video_inputs  # noqa: E402
from kda.settings import get_setting  # noqa: E402
from kda.synth import SynthConfig, write_synthetic_benchmark  # noqa: E402
from kda.train import TrainConfig, run_stage  # noqa: E402


def rate(fn, items: int, repeat: int = 3, sync: bool = True) -> float:
    """items per second, best of `repeat` (after one warm-up call)."""
    fn()
    best = float("inf")
    for _ in range(repeat):
        if sync:
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if sync:
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return items / best


def c3d_and_vggish(cuda) -> None:
    c3d = load_backbone("c3d", "offline").model
    vggish = load_backbone("vggish", "offline").model
    clips = torch.randn(64, 3, 16, 112, 112)
    examples = torch.randn(1024, 1, 96, 64)
    with torch.inference_mode():
        cpu = c3d(clips[:2])
        gpu_model = __import__("copy").deepcopy(c3d).to(cuda)
        gpu = gpu_model(clips[:2].to(cuda)).cpu()
        print(f"C3D fc7 CPU vs CUDA on 2 clips: max |diff| {float((cpu - gpu).abs().max()):.2e}")
        x = clips.to(cuda)
        fp32 = rate(lambda: gpu_model(x), len(x))
        fast = gpu_model.to(memory_format=torch.channels_last_3d)
        xc = x.contiguous(memory_format=torch.channels_last_3d)

        def bf16():
            with torch.autocast("cuda", dtype=torch.bfloat16):
                fast(xc)

        print(
            f"C3D fc7, 16-frame 112x112 clips from memory: {fp32:,.0f} clips/s fp32, {rate(bf16, len(x)):,.0f} bf16 + channels_last_3d"
        )
        vg = __import__("copy").deepcopy(vggish).to(cuda)
        e = examples.to(cuda)
        print(f"VGGish, 0.96 s examples: {rate(lambda: vg(e), len(e)):,.0f} /s")


def training(cuda, folder: Path) -> None:
    root = folder / "ucf"
    write_synthetic_benchmark(root, "UCF", "cls", SynthConfig(train_videos=110, eval_videos=4))
    bench = load_benchmark(root, "UCF", "cls")
    class_matrix = load_class_matrix(root / "knowledge_vectors.npz").bind(bench.classes, known=bench.all_classes)
    stage = bench.stage(1)
    model_cfg = get_setting("cls").model_config(embed_dim=class_matrix.vectors.shape[1])
    for name, cfg in (
        ("cls, batch 256, one pass", TrainConfig(epochs=2)),
        ("cls, batch 2048 x 50 (released epoch)", TrainConfig(epochs=2, batch_size=2048, batches_per_epoch=50)),
    ):
        results = {}
        for device in ("cpu", cuda) if "one pass" in name else (cuda,):
            start = time.perf_counter()
            model, log, _ = run_stage(
                stage,
                class_matrix.vectors,
                model_cfg,
                loss_preset("kda"),
                cfg,
                1,
                cfg.epochs,
                progress=False,
                device=device,
            )
            seconds = (time.perf_counter() - start) / cfg.epochs
            results[str(device)] = (seconds, log[-1].metrics["hm"])
            print(
                f"train {name} on {device}: {seconds:.2f} s/epoch ({len(stage.train)} videos), val HM {log[-1].metrics['hm']:.2f}"
            )
        ev_cpu = evaluate(model.cpu(), stage.evaluation, class_matrix.vectors, stage.seen, stage.unseen)
        ev_gpu = evaluate(model.to(cuda), stage.evaluation, class_matrix.vectors, stage.seen, stage.unseen)
        print(f"  evaluate CPU vs CUDA: max |distance diff| {np.abs(ev_cpu.distances - ev_gpu.distances).max():.2e}")


def extraction(cuda, folder: Path) -> None:
    if shutil.which("ffmpeg") is None:
        print("extraction: ffmpeg missing, skipped")
        return
    paths = {}
    for i in range(16):
        path = folder / f"v{i}.mp4"
        subprocess.run(
            ["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25:duration=10",
             "-f", "lavfi", "-i", f"sine=frequency={200 + 30 * i}:duration=10", "-c:v", "libx264", "-preset",
             "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(path)], check=True)  # fmt: skip
        paths[f"v{i}"] = path
    options = ExtractOptions("cls", max_clips=None, max_examples=64)
    start = time.perf_counter()
    chunks = (c for path in paths.values() for c in video_inputs(path, options))
    clips = sum(len(c.inputs) for c in chunks if isinstance(c, VisualChunk))
    decode = time.perf_counter() - start
    print(f"decode + preprocess only, 1 process: {len(paths) / decode:.2f} videos/s, {clips / decode:.1f} clips/s")
    cpu, gpu = {}, {}
    extract_many(dict(list(paths.items())[:1]), options, Networks("cls", "offline"), cpu.__setitem__)
    for workers in (1, 4, 8):
        start = time.perf_counter()
        extract_many(
            paths, options, Networks("cls", "offline", device=cuda), gpu.__setitem__, workers=workers, batch=64
        )
        seconds = time.perf_counter() - start
        print(
            f"extraction on CUDA, {workers} workers: {len(paths) / seconds:.2f} videos/s, {clips / seconds:.1f} clips/s"
        )
    a, b = cpu["v0"].visual, gpu["v0"].visual
    print(f"extraction CPU vs CUDA, fc7 mean: cosine {float(a @ b / np.linalg.norm(a) / np.linalg.norm(b)):.6f}")


def main() -> None:
    if not torch.cuda.is_available():
        print("no CUDA GPU here: nothing to check (the test suite runs the same code on the CPU)")
        return
    cuda = torch.device("cuda")
    print(f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}")
    torch.backends.cudnn.benchmark = True
    with tempfile.TemporaryDirectory() as tmp:
        c3d_and_vggish(cuda)
        training(cuda, Path(tmp))
        extraction(cuda, Path(tmp))


if __name__ == "__main__":
    main()
