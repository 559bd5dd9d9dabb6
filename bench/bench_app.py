"""What a person waits for in the real app (`python app.py`, bundled demo checkpoint, a free 127.0.0.1 port),
driven through its named API endpoints with `gradio_client`, each figure with a same-run baseline and a ratio:

* app start to ready (the first page answers), against `import gradio` + `Studio.load(demo)` in a subprocess,
  which the app cannot avoid;
* classify an example video (/classify) and a reference sample (/classify_sample), against the same
  classification as a direct `kda.studio.Studio` call in this process;
* edit one class's description -> new prediction (/edit), and -> new prediction + similarity heatmap
  (/edit then /similarity), against `session.edit` + `classify_features` (+ `similarity`) in this process;
* t-SNE maps (/embeddings): first call and cached (second call), and the first call against the library;
* another visitor's edit (/edit) while one visitor's maximal import (/import_knowledge: 1 MB of descriptions at
  the 2,000-character cap, each one new) is being encoded, against the same edit alone;
* N classifications at once (N = 1, 2, 4 threads calling `Studio.classify` on a 10 s 360p clip made by ffmpeg,
  one studio, so one set of networks) against one classification alone, and what that makes of the cores.

Prints figures, ratios and which ones exceed their budget in README.md ("Budgets"); asserts
nothing. Loopback only; every wait is bounded; the app is stopped at the end, also on error.

    python bench/bench_app.py [--starts 2] [--repeat 3] [--cheap 7]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # tests/app_server.py starts the real app, as the API tests do

from app_server import CHECKPOINT, AppServer, start_app  # noqa: E402
from record import at_most, figure  # noqa: E402

EXAMPLE = ROOT / "assets" / "examples" / "pattern_tone_440.mp4"
GZSL = "GZSL: all classes"
TOP_K = 5
READY_TIMEOUT = 180.0  # seconds for the app (or the baseline) to be ready
CALL_TIMEOUT = 300.0  # seconds for one API call (the first classify builds the extractor's backbones)
APP_ENV = {"OPENAI_API_KEY": "", "OPENAI_BASE_URL": ""}  # no LLM: nothing here leaves the machine
AT_ONCE = (1, 2, 4)  # classifications running at the same time
CLIP_SECONDS, CLIP_SIZE, CLIP_FPS = 10, "640x360", 25  # the clip PRODUCT.md's classify budget is for

# README.md "Budgets" (CPU, 2 cores), in seconds
BUDGET_START, BUDGET_CLASSIFY, BUDGET_EDIT, BUDGET_TSNE = 15.0, 3.0, 0.5, 10.0

BASELINE_START = f"""
import time
import gradio
from kda.studio import Studio
Studio.load({str(CHECKPOINT)!r})
print(time.time(), flush=True)
"""

over: list[str] = []  # figures over their budget, said again at the end


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} / {five:.2f} / {fifteen:.2f} (1 / 5 / 15 min) on {os.cpu_count()} cores"


def paired(api, library, repeat: int, warmup: int = 0):
    """(API seconds, library seconds, last API result, last library result) of `repeat` calls of each after
    `warmup` untimed ones, alternated so that a change of the machine's load hits both alike."""
    api_times, library_times = [], []
    api_result = library_result = None
    for i in range(warmup + repeat):
        start = time.perf_counter()
        api_result = api()
        middle = time.perf_counter()
        library_result = library()
        if i >= warmup:
            api_times.append(middle - start)
            library_times.append(time.perf_counter() - middle)
    return api_times, library_times, api_result, library_result


def seconds(s: float) -> str:
    return f"{s:.2f} s" if s >= 1 else f"{s * 1000:.1f} ms"


def line(
    label: str, api: list[float], baseline: list[float], baseline_label: str, limit: float = 0.0, what: str = ""
) -> tuple[float, float]:
    """Record the runs of each (bench/record.py: medians and their ratio, against README.md's budget `limit` in
    seconds where given), print the bests; return the bests."""
    a, b = min(api), min(baseline)
    print(f"  {label:<44} best {seconds(a):>9}  vs {baseline_label:<34} best {seconds(b):>9}")
    budget_s = at_most(limit, "s") if limit else None
    figure(label, api, "s", baseline=baseline, baseline_what=baseline_label, budget=budget_s, note=what.strip(" ()"))
    if limit:
        budget(label, statistics.median(api), statistics.median(baseline), limit, what)
    return a, b


def budget(label: str, value: float, baseline: float, limit: float, what: str = "") -> None:
    if value > limit:
        base = f"; its baseline alone: {seconds(baseline)}{', also over' if baseline > limit else ''}"
        over.append(f"{label}: {seconds(value)} > {seconds(limit)}{what}{base}")


def call(client, *args, api_name: str):
    """One API call, waited for at most CALL_TIMEOUT seconds."""
    return client.submit(*args, api_name=api_name).result(timeout=CALL_TIMEOUT)


# ---------------------------------------------------------------------------------------------


def baseline_start(env: dict[str, str]) -> float:
    """Seconds from spawning `python -c "import gradio; Studio.load(demo)"` to the checkpoint being loaded."""
    started = time.time()
    done = subprocess.run(
        [sys.executable, "-c", BASELINE_START],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=READY_TIMEOUT,
        check=True,
    )
    return float(done.stdout.split()[-1]) - started


def bench_start(folder: Path, starts: int, running: list[AppServer]) -> AppServer:
    """Start the app `starts` times, each after a baseline; the last one stays up for the API benches. Every
    server started is in `running`, for the caller to stop."""
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1", **APP_ENV}
    apps, bases = [], []
    for i in range(starts):
        bases.append(baseline_start(env))
        (folder / f"app{i}").mkdir()
        running.append(start_app(folder / f"app{i}" / "app.log", env=APP_ENV, timeout=READY_TIMEOUT))
        apps.append(running[-1].ready_s)
        if i < starts - 1:
            running[-1].stop()
    print(f"app start to ready (first page answers; polled every 0.25 s), best of {starts}:")
    print(f"  runs: app {', '.join(f'{s:.2f}' for s in apps)} s; baseline {', '.join(f'{s:.2f}' for s in bases)} s")
    line("python app.py -> page answers", apps, bases, "import gradio + Studio.load", BUDGET_START)
    return running[-1]


def bench_classify(studio, client, repeat: int, cheap: int) -> None:
    from gradio_client import handle_file

    session = studio.new_session()

    def api_video():
        return call(client, handle_file(EXAMPLE), TOP_K, GZSL, api_name="/classify")

    def lib_video():
        return studio.classify(EXAMPLE, session, top_k=TOP_K)

    api_first, lib_first, outputs, prediction = paired(api_video, lib_video, 1)
    api_warm, lib_warm, _, _ = paired(api_video, lib_video, repeat)
    same = outputs[-1]["gzsl"][0]["class_id"] == prediction.gzsl[0].class_id
    print(f"classify {EXAMPLE.name} (4 s, 320x240; {studio.weights} weights), API incl. upload vs library:")
    what = " (the budget is for a 10 s 360p clip; this one is 4 s 320x240)"
    line("classify example video via API, first call", api_first, lib_first, "Studio.classify", BUDGET_CLASSIFY, what)
    line("classify example video via API", api_warm, lib_warm, "Studio.classify", BUDGET_CLASSIFY, what)
    print(f"  same top class through both: {same}")

    api_sample, lib_sample, _, _ = paired(
        lambda: call(client, "0", TOP_K, GZSL, api_name="/classify_sample"),
        lambda: studio.classify_sample(0, session, top_k=TOP_K),
        cheap,
        warmup=1,
    )
    print(f"classify reference sample 0 (features stored in the checkpoint), best of {cheap}:")
    line("/classify_sample", api_sample, lib_sample, "Studio.classify_sample")


def bench_edit(studio, client, cheap: int) -> None:
    outputs = call(client, "0", TOP_K, GZSL, api_name="/classify_sample")  # the prediction an edit moves
    target = outputs[-1]["gzsl"][0]["class_id"]
    session = studio.new_session()
    texts = [d.text for d in session.entry(target).descriptions]
    last = studio.classify_sample(0, session, top_k=TOP_K)
    count = [0]

    def new_text(who: str) -> str:  # a text never encoded before, so every edit encodes one text
        count[0] += 1
        return f"{texts[1]} ({who} edit {count[0]})"

    def api_edit():
        return call(client, target, "", texts[0], new_text("api"), *texts[2:3], api_name="/edit")[-1]

    def api_edit_and_heatmap():
        return api_edit(), call(client, "cluster", "all classes", [], api_name="/similarity")

    def rescore():  # a new prediction from the rho_av rows the prediction kept: distances only
        return studio.rescore(last, session, TOP_K)

    def lib_edit():  # what the /edit handler computes: demo.knowledge.edit + demo.state.Visitor.rescore
        session.edit(target, [texts[0], new_text("library"), *texts[2:]])
        return rescore()

    def forward_pass():  # the same prediction made again through the network, as re-scoring did before
        audio = last.audio if last.has_audio else None
        return studio.classify_features(audio, last.visual, session, TOP_K, last.notes, last.source)

    def lib_edit_and_heatmap():
        return lib_edit(), studio.similarity(session, order="cluster")

    api_pred, lib_pred, _, _ = paired(api_edit, lib_edit, cheap, warmup=1)
    api_both, lib_both, _, _ = paired(api_edit_and_heatmap, lib_edit_and_heatmap, cheap, warmup=1)
    print(f"edit {target}'s visual description (one new text encoded each time), best of {cheap}:")
    line("/edit -> new prediction", api_pred, lib_pred, "session.edit + rescore", BUDGET_EDIT)
    line("/edit + /similarity -> prediction + heatmap", api_both, lib_both, "... + Studio.similarity", BUDGET_EDIT)
    rescored, forwarded, a, b = paired(rescore, forward_pass, cheap * 3, warmup=1)
    same = [x.class_id for x in a.gzsl] == [x.class_id for x in b.gzsl]
    line("new prediction after an edit: re-score", rescored, forwarded, "a forward pass per prediction")
    print(f"  same ranking both ways: {same}")


def bench_tsne(studio, client, repeat: int) -> None:
    from gradio_client import handle_file

    call(client, handle_file(EXAMPLE), TOP_K, GZSL, api_name="/classify")  # the video the maps highlight
    query = studio.classify(EXAMPLE, top_k=TOP_K)

    def api_maps():
        return call(client, "tsne", api_name="/embeddings")

    def lib_maps():
        return studio.embedding_maps(method="tsne", query=query)

    api_first, lib_first, outputs, maps = paired(api_maps, lib_maps, 1)  # each process's first t-SNE
    api_cached, lib_cached, _, _ = paired(api_maps, lib_maps, repeat)
    points = sum(len(m.coords) for m in maps.values())
    print(f"t-SNE, the four maps of the reference sample + {EXAMPLE.name} ({points} points in all):")
    print(f"  {outputs[-2]}")
    what = f" (the budget is for 2,000 points; these are {points})"
    first = line("/embeddings t-SNE, first call", api_first, lib_first, "Studio.embedding_maps", BUDGET_TSNE, what)
    cached = line("/embeddings t-SNE, cached", api_cached, lib_cached, "Studio.embedding_maps (cache)")
    print(f"  first / cached through the API: {first[0] / cached[0]:.1f}x (cached = figures rebuilt, no t-SNE)")


def maximal_import(client, folder: Path) -> Path:
    """The visitor's knowledge with new descriptions at the cap added until the file is at the import cap."""
    import json

    from kda.knowledge.store import CAPS

    knowledge = json.loads(Path(call(client, api_name="/export_knowledge")).read_text())
    ids, size, i = list(knowledge["classes"]), len(json.dumps(knowledge)), 0
    words = "a drummer plays a loud roll on the snare while the crowd claps and a trumpet answers "
    while size + CAPS.description_chars + 64 < CAPS.import_bytes:
        text = (f"{i} " + words * 30)[: CAPS.description_chars]
        knowledge["classes"][ids[i % len(ids)]]["descriptions"].append({"aspect": "other", "text": text})
        size, i = size + len(text) + 40, i + 1
    path = folder / "maximal.json"
    path.write_text(json.dumps(knowledge))
    return path


def bench_edit_during_import(server, folder: Path, cheap: int) -> None:
    """Bob's edit alone, then while Alice's maximal import encodes: the encoder serves callers in turn, a batch
    at a time, so Bob waits for one of Alice's batches, not for all of them."""
    from gradio_client import handle_file

    alice, bob = server.client(folder / "alice"), server.client(folder / "bob")
    upload = maximal_import(alice, folder)
    count = [0]

    def bob_edit() -> float:
        count[0] += 1
        start = time.perf_counter()
        call(bob, "Bowling", "", f"A heavy ball knocks down ten pins ({count[0]}).", "", "", api_name="/edit")
        return time.perf_counter() - start

    alone = [bob_edit() for _ in range(cheap)]
    started = time.perf_counter()
    importing = alice.submit(handle_file(upload), api_name="/import_knowledge")
    time.sleep(2.0)  # into its encoding
    during = []
    while not importing.done() and len(during) < cheap:
        during.append(bob_edit())
    importing.result(timeout=CALL_TIMEOUT * 3)
    took = time.perf_counter() - started
    print(f"another visitor's edit while a maximal import ({upload.stat().st_size / 2**20:.2f} MB) encodes:")
    print(f"  the import took {seconds(took)}; {len(during)} of Bob's edits ran during it")
    if during:
        line("/edit during the import", during, alone, "the same /edit alone")
        budget("edit during another visitor's maximal import", max(during), min(alone), 1.0, " (max)")


def make_clip(folder: Path) -> Path:
    """A CLIP_SECONDS H.264 + AAC stereo clip of a moving test pattern and a tone."""
    path = folder / "clip_360p.mp4"
    args = [
        *["-f", "lavfi", "-i", f"testsrc2=size={CLIP_SIZE}:rate={CLIP_FPS}:duration={CLIP_SECONDS}"],
        *["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=44100:duration={CLIP_SECONDS}"],
        *["-ac", "2", "-c:v", "libx264", "-preset", "fast", "-pix_fmt", "yuv420p", "-c:a", "aac"],
    ]
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *args, str(path)], check=True)
    return path


def at_once(studio, path: Path, n: int) -> tuple[float, list]:
    """Seconds from starting `n` threads that each classify `path` (each its own session) to the last result."""
    sessions = [studio.new_session() for _ in range(n)]
    ready = threading.Barrier(n + 1)  # the clock starts once every thread is up

    def classify(session):
        ready.wait()
        return studio.classify(path, session, top_k=TOP_K)

    with ThreadPoolExecutor(n) as pool:
        futures = [pool.submit(classify, session) for session in sessions]
        ready.wait()
        start = time.perf_counter()
        predictions = [f.result(timeout=CALL_TIMEOUT) for f in futures]
    return time.perf_counter() - start, predictions


def bench_at_once(studio, folder: Path, repeat: int) -> None:
    """N classifications at once through one studio against one alone, measured here and now."""
    import torch

    if shutil.which("ffmpeg") is None:
        print("N classifications at once: skipped, ffmpeg is not installed")
        return
    path = make_clip(folder)
    studio.classify(path)  # untimed: the networks are built and every first-use cost is paid
    cores, threads = os.cpu_count(), torch.get_num_threads()
    print(
        f"N classifications of a {CLIP_SECONDS} s {CLIP_SIZE} clip at once (threads calling Studio.classify, one "
        f"studio; {studio.weights} weights, C3D cap {studio.max_clips}; {cores} cores, torch {threads} threads), "
        f"best of {repeat}, against one alone:"
    )
    walls = {n: [] for n in AT_ONCE}
    tops = set()
    for _ in range(repeat):  # alternated, so that a change of the machine's load hits every N alike
        for n in AT_ONCE:
            wall, predictions = at_once(studio, path, n)
            walls[n].append(wall)
            tops |= {p.gzsl[0].class_id for p in predictions}
    one = min(walls[1])
    gains = {}
    for n in AT_ONCE:
        wall = min(walls[n])
        gains[n] = n * one / wall  # videos per second, against one at a time
        figure(f"{n} classifications at once (10 s clip), seconds a video", [w / n for w in walls[n]], "s",
               baseline=walls[1], baseline_what="one alone, same studio")  # fmt: skip
        print(
            f"  N={n}: all done in {seconds(wall):>8} ({seconds(wall / n)} a video); one alone {seconds(one)}: "
            f"each waits {wall / one:.2f}x as long, {gains[n]:.2f}x the videos per second"
        )
    best, most = max(gains, key=gains.get), max(AT_ONCE)
    overlap = "calls overlap (decoding beside the networks)" if gains[best] >= 1.2 else "one call already fills them"
    print(f"  same top class in every call: {len(tops) == 1}")
    print(
        f"  what {cores} cores allow: at most {gains[best]:.2f}x the throughput of one at a time (N={best}), as "
        f"{overlap}; at N={most} each caller waits {min(walls[most]) / one:.2f}x as long as alone"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--starts", type=int, default=2, help="app starts (each with its own baseline)")
    parser.add_argument("--repeat", type=int, default=3, help="repeats of video classification and cached maps")
    parser.add_argument("--cheap", type=int, default=7, help="repeats of sample classification and edits")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))  # so `finally` stops the app
    if not CHECKPOINT.is_dir():
        print(f"bench_app: skipped, no demo checkpoint at {CHECKPOINT} (run `make checkpoint`)")
        return
    print(f"bench_app: the real app on 127.0.0.1, {load()}")
    with tempfile.TemporaryDirectory(prefix="kda-bench-app-") as folder:
        running: list[AppServer] = []
        try:
            server = bench_start(Path(folder), max(args.starts, 1), running)
            from kda.studio import Studio

            studio = Studio.load(CHECKPOINT)  # the library baseline, in this process
            downloads = Path(folder) / "downloads"
            bench_classify(studio, server.client(downloads / "classify"), args.repeat, args.cheap)
            bench_edit(studio, server.client(downloads / "edit"), args.cheap)
            bench_tsne(studio, server.client(downloads / "tsne"), args.repeat)
            bench_edit_during_import(server, downloads, args.cheap)
            bench_at_once(studio, Path(folder), args.repeat)
        except BaseException:
            if running:
                print(f"app log (tail):\n{running[-1].log_tail()}", file=sys.stderr)
            raise
        finally:
            for app in running:
                app.stop()
    print(f"after: {load()}")
    if over:
        print("OVER BUDGET (README.md 'Budgets'):")
        for item in over:
            print(f"  {item}")
    else:
        print("every figure with a README.md budget is within it")


if __name__ == "__main__":
    main()
