"""What a person waits for in the app, measured through the library on the bundled demo checkpoint:

* classify a 10 s 360p clip (made here with ffmpeg) on the demo's offline extractor weights;
* edit one class's descriptions -> new prediction, against re-encoding every class (same run, same encoder);
* the four embedding maps of the reference sample (t-SNE and PCA), first call and cached.

Prints figures and ratios; asserts nothing (budgets live in README.md, "Budgets").
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kda.knowledge.class_matrix import ClassMatrixBuilder  # noqa: E402
from kda.studio import Studio  # noqa: E402

DEMO = ROOT / "checkpoints" / "demo-ucf-cls"


def timed(fn, repeat: int = 1):
    """(best seconds of `repeat` calls, last result)."""
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def make_clip(folder: Path) -> Path:
    path = folder / "clip_10s_360p.mp4"
    source = ["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25:duration=10"]
    tone = ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100:duration=10"]
    codecs = ["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest"]
    subprocess.run(["ffmpeg", "-v", "error", "-y", *source, *tone, *codecs, str(path)], check=True)
    return path


def bench_classify(studio: Studio, clip: Path) -> None:
    first, prediction = timed(lambda: studio.classify(clip))
    warm, _ = timed(lambda: studio.classify(clip), repeat=3)
    print(f"classify 10 s 360p clip ({studio.weights} weights, C3D cap {studio.max_clips} clips):")
    print(f"  first call {first:.2f} s (builds the backbones), then {warm:.2f} s (best of 3)")
    print(f"  notes: {'; '.join(prediction.notes)}")


def bench_edit(studio: Studio) -> None:
    session = studio.new_session()
    entry = session.entry("ApplyLipstick")
    texts = [d.text for d in entry.descriptions]
    count = [0]

    def edit_and_predict():
        count[0] += 1
        texts[1] = f"A person paints their lips with colour, take {count[0]}."
        session.edit("ApplyLipstick", texts)
        return studio.classify_sample(0, session)

    def re_encode_all_and_predict():
        fresh = ClassMatrixBuilder(studio.builder.encoder, studio.builder.form)  # every text encoded again
        fresh.rows(session.knowledge)
        return studio.classify_sample(0, session)

    incremental, _ = timed(edit_and_predict, repeat=5)
    everything, _ = timed(re_encode_all_and_predict, repeat=3)
    texts_total = sum(len(session.knowledge.texts(c)) for c in session.class_ids)
    print("edit one class -> new prediction:")
    print(f"  incremental {incremental * 1000:.1f} ms ({session.last_encoded} text encoded)")
    print(f"  re-encoding all {len(session.class_ids)} classes ({texts_total} texts) {everything * 1000:.1f} ms")
    print(f"  ratio {everything / incremental:.1f}x (budget: under 0.5 s)")


def bench_maps(studio: Studio) -> None:
    query = studio.classify_sample(0)
    for method in ("tsne", "pca"):
        first, maps = timed(lambda m=method: studio.embedding_maps(method=m, query=query))
        cached, _ = timed(lambda m=method: studio.embedding_maps(method=m, query=query), repeat=3)
        points = sum(len(m.coords) for m in maps.values())
        print(
            f"{method} of the reference sample (4 maps, {points} points): first {first:.2f} s, cached {cached * 1000:.2f} ms"
        )


def main() -> None:
    start, studio = timed(lambda: Studio.load(DEMO))
    print(f"Studio.load(demo) {start:.2f} s (model + all-MiniLM-L6-v2)")
    bench_edit(studio)
    bench_maps(studio)
    if shutil.which("ffmpeg") is None:
        print("classify: skipped, ffmpeg is not installed")
        return
    with tempfile.TemporaryDirectory() as folder:
        bench_classify(studio, make_clip(Path(folder)))


if __name__ == "__main__":
    main()
