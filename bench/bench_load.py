"""The load run: the real app (`python app.py`, bundled demo checkpoint, a free 127.0.0.1 port) and N visitors at
once, each its own `gradio_client` session doing classify (a 10 s 360p clip made by ffmpeg) -> edit -> similarity
for a fixed number of rounds, bounded in time; beside them a stream of bad requests (a text file named .mp4, a
truncated mp4, and /regenerate against an LLM base URL where nothing listens).

Per N it records (bench/record.py): rounds per minute, p50/p95 of each endpoint against N = 1 of the same run,
the server's RSS before and after, good requests that failed (by kind), bad requests that did not get their own
message, and whether every visitor's knowledge (exported through the API) is exactly what that visitor did.
The figures of issue 20, measured from outside on main before the redesign, are in each figure's note.

    python bench/bench_load.py [--quick] [--visitors 1 4 8 16] [--seconds 180]
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # tests/app_server.py starts the real app, as the API tests do

from app_server import CHECKPOINT, AppServer, free_port, start_app  # noqa: E402
from record import at_least, at_most, figure, quick, rss_mib  # noqa: E402

GZSL, TOP_K = "GZSL: all classes", 5
CALL_TIMEOUT = 300.0  # seconds for one call, queueing included
ROUNDS = {1: 3, 4: 2, 8: 1, 16: 1}  # rounds per visitor at each N (fewer where many share 2 cores)
BAD_PAUSE_S = 1.0  # between two bad requests
# What each bad request must be answered with (a fragment of its own message).
BAD = {
    "text file named .mp4": "is not a video or audio file that FFmpeg recognises",
    "truncated mp4": "damaged or truncated",
    "unreachable LLM": "cannot reach the LLM",
}
# Issue 20: main before the redesign, measured from outside on this machine: classify p50 per N; edits throughout.
BEFORE_CLASSIFY_P50 = {1: 3.7, 4: 14.4, 8: 22.0, 16: 50.2}
BEFORE_EDIT_P50, BEFORE_RSS = "0.19-0.40 s", "1.2 -> 4.0 GB"


@dataclass
class Tally:
    """What happened at one N, filled by every thread (each append is atomic under the GIL)."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    failed: Counter = field(default_factory=Counter)  # good requests that failed, by kind
    bad: Counter = field(default_factory=Counter)  # bad requests, by (kind, "own message" | what came instead)
    rounds: int = 0


def make_media(folder: Path) -> dict[str, Path]:
    """The 10 s 360p clip (H.264 + AAC), a text file named .mp4 and the clip cut at a third."""
    clip = folder / "clip_10s_360p.mp4"
    args = [
        *["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25:duration=10"],
        *["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100:duration=10"],
        *["-ac", "2", "-c:v", "libx264", "-preset", "fast", "-pix_fmt", "yuv420p", "-c:a", "aac"],
    ]
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *args, str(clip)], check=True)
    text = folder / "notes.mp4"
    text.write_text("Shopping list: eggs, flour, a new phone charger.\n" * 20)
    truncated = folder / "cut.mp4"
    data = clip.read_bytes()
    truncated.write_bytes(data[: len(data) // 3])
    return {"clip": clip, "text file named .mp4": text, "truncated mp4": truncated}


def shipped() -> dict[str, list[str]]:
    """Every class's description texts in the checkpoint: what each visitor starts from."""
    knowledge = json.loads((CHECKPOINT / "config.json").read_text())["knowledge"]
    return {c: [d["text"] for d in k["descriptions"]] for c, k in knowledge["classes"].items()}


def exported(client) -> dict[str, list[str]]:
    path = client.submit(api_name="/export_knowledge").result(timeout=CALL_TIMEOUT)
    classes = json.loads(Path(path).read_text())["classes"]
    return {c: [d["text"] for d in k["descriptions"]] for c, k in classes.items()}


def first_classify(server: AppServer, folder: Path, media) -> float:
    from gradio_client import handle_file

    client = server.client(folder / "warm-up")
    start = time.perf_counter()
    client.submit(handle_file(media["clip"]), TOP_K, GZSL, api_name="/classify").result(timeout=CALL_TIMEOUT)
    return time.perf_counter() - start


def timed_call(client, tally: Tally, endpoint: str, *args):
    start = time.perf_counter()
    result = client.submit(*args, api_name=endpoint).result(timeout=CALL_TIMEOUT)
    tally.latencies[endpoint].append(time.perf_counter() - start)
    return result


def visit(server: AppServer, folder: Path, media, plan: Plan, me: int, tally: Tally, start: threading.Barrier):
    """One visitor's rounds; returns the texts it expects its knowledge to hold for the classes it edited."""
    from gradio_client import handle_file

    client = server.client(folder / f"visitor{me}")
    base = shipped()
    ids = sorted(base)
    mine: dict[str, list[str]] = {}
    start.wait()
    for r in range(plan.rounds):
        if time.monotonic() > plan.deadline:
            break
        class_id = ids[(me + r) % len(ids)]  # visitors' classes overlap: a leak would show
        texts = list(mine.get(class_id, base[class_id]))
        texts[1] = f"visitor {me} of {plan.n}, round {r}: {base[class_id][1]}"
        try:
            outputs = timed_call(client, tally, "/classify", handle_file(media["clip"]), TOP_K, GZSL)
            assert len(outputs[-1]["gzsl"]) == TOP_K, "classify returned no top-k"
            timed_call(client, tally, "/edit", class_id, "", *texts)
            mine[class_id] = texts
            timed_call(client, tally, "/similarity", "cluster", "all classes", [])
            tally.rounds += 1
        except Exception as e:  # a good request failed: counted by kind, the visitor goes on
            tally.failed[failure_kind(e)] += 1
    return client, mine


def failure_kind(error: Exception) -> str:
    return f"{type(error).__name__}: {str(error).splitlines()[0][:90] if str(error) else ''}"


def bad_stream(server: AppServer, folder: Path, media, tally: Tally, done: threading.Event) -> tuple:
    """Bad requests, one kind after another, until the visitors are done. Its own edit first: a failed
    request must leave it in place."""
    from gradio_client import handle_file

    client = server.client(folder / "bad")
    base = shipped()
    class_id = sorted(base)[-1]
    texts = [*base[class_id][:1], "An edit that every failed request must leave in place.", *base[class_id][2:]]
    client.submit(class_id, "", *texts, api_name="/edit").result(timeout=CALL_TIMEOUT)
    kinds = list(BAD)
    i = 0
    while not done.is_set():
        kind = kinds[i % len(kinds)]
        i += 1
        try:
            if kind == "unreachable LLM":
                client.submit([class_id], class_id, api_name="/regenerate").result(timeout=CALL_TIMEOUT)
            else:
                client.submit(handle_file(media[kind]), TOP_K, GZSL, api_name="/classify").result(timeout=CALL_TIMEOUT)
            tally.bad[(kind, "served as if good")] += 1
        except Exception as e:
            tally.bad[(kind, "own message" if BAD[kind] in str(e) else failure_kind(e))] += 1
        done.wait(BAD_PAUSE_S)
    return client, {class_id: texts}


@dataclass
class Plan:
    n: int
    rounds: int
    deadline: float  # time.monotonic() after which no visitor starts a round


def run_level(server: AppServer, folder: Path, media, plan: Plan) -> tuple[Tally, float, int]:
    """N visitors and the bad stream at once; (tally, wall seconds, visitors whose knowledge is exactly theirs)."""
    tally, done = Tally(), threading.Event()
    start = threading.Barrier(plan.n + 1)
    results: dict[int, tuple] = {}

    def visitor(me: int) -> None:
        results[me] = visit(server, folder / f"n{plan.n}", media, plan, me, tally, start)

    threads = [threading.Thread(target=visitor, args=(me,)) for me in range(plan.n)]
    bad: list[tuple] = []
    stream = threading.Thread(target=lambda: bad.append(bad_stream(server, folder / f"n{plan.n}", media, tally, done)))
    for t in threads:
        t.start()
    start.wait()
    began = time.perf_counter()
    stream.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - began
    done.set()
    stream.join(CALL_TIMEOUT)
    base = shipped()
    sessions = [*results.values(), *bad]  # a visitor whose thread failed is missing, so not exact
    exact = sum(exported(client) == {c: mine.get(c, texts) for c, texts in base.items()} for client, mine in sessions)
    return tally, wall, exact


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def report(plan: Plan, tally: Tally, wall: float, exact: int, rss: tuple, reference: dict) -> None:
    """Print and record one N's figures; `reference` holds N=1's, the baseline of the others."""
    n = plan.n
    per_minute = tally.rounds / wall * 60
    print(f"N={n}: {tally.rounds} of {n * plan.rounds} rounds in {wall:.1f} s ({per_minute:.1f} rounds/min)")
    figure(f"load N={n}: rounds per minute", per_minute, "rounds/min", baseline=reference.get("rpm"),
           baseline_what="N=1, same run")  # fmt: skip
    reference.setdefault("rpm", per_minute)
    for endpoint, times in sorted(tally.latencies.items()):
        for q in (0.5, 0.95):
            key = f"{endpoint} p{round(q * 100)}"
            value = percentile(times, q)
            before = ""
            if endpoint == "/classify" and q == 0.5:
                before = f"before the redesign (issue 20, main): {BEFORE_CLASSIFY_P50.get(n, '-')} s"
            elif endpoint == "/edit" and q == 0.5:
                before = f"before the redesign (issue 20, main): {BEFORE_EDIT_P50}"
            budget = {"/classify": at_most(3.0, "s"), "/edit": at_most(0.5, "s")}.get(endpoint) if n == 1 else None
            figure(f"load N={n}: {key}", value, "s", baseline=reference.get(key), baseline_what="N=1, same run",
                   budget=budget, note=f"{len(times)} calls; {before}".rstrip("; "))  # fmt: skip
            reference.setdefault(key, value)
    failed = sum(tally.failed.values())
    kinds = "; ".join(f"{k} x{v}" for k, v in tally.failed.items()) or "none"
    figure(f"load N={n}: good requests that failed", failed, "requests", budget=at_most(0, "requests"), note=kinds)
    wrong = {k: v for k, v in tally.bad.items() if k[1] != "own message"}
    answered = ", ".join(f"{k[0]} x{v}" for k, v in tally.bad.items() if k[1] == "own message")
    figure(f"load N={n}: bad requests without their own message", sum(wrong.values()), "requests",
           budget=at_most(0, "requests"), note=f"own message: {answered or 'none'}; otherwise: {wrong or 'none'}")  # fmt: skip
    figure(f"load N={n}: sessions whose knowledge is exactly their own", exact, "sessions",
           budget=at_least(n + 1, "sessions"), note=f"{n} visitors + the bad stream, exported through the API")  # fmt: skip
    figure(f"load N={n}: server RSS after", rss[1], "MiB", baseline=rss[0], baseline_what="before this N",
           note=f"server peak {rss[2]:,.0f} MiB; before the redesign (issue 20): RSS {BEFORE_RSS} over the run")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="N = 1, 2, one round each")
    parser.add_argument("--visitors", type=int, nargs="+", help="the Ns (default 1 4 8 16; quick 1 2)")
    parser.add_argument("--seconds", type=float, default=180.0, help="no round starts later than this, per N")
    args = parser.parse_args()
    small = quick()
    levels = args.visitors or ([1, 2] if small else sorted(ROUNDS))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))  # so `finally` stops the app
    if not CHECKPOINT.is_dir():
        print(f"bench_load: skipped, no demo checkpoint at {CHECKPOINT} (run `make checkpoint`)")
        return
    env = {"OPENAI_API_KEY": "", "OPENAI_BASE_URL": f"http://127.0.0.1:{free_port()}/v1", "KDA_LLM_MODEL": "none"}
    with tempfile.TemporaryDirectory(prefix="kda-bench-load-") as tmp:
        folder = Path(tmp)
        media = make_media(folder)
        server = start_app(folder / "app.log", env=env)
        try:
            print(
                f"app ready in {server.ready_s:.1f} s on {server.url}; LLM base URL {env['OPENAI_BASE_URL']} (closed)"
            )
            cold = first_classify(server, folder, media)  # builds the extractor's networks: not part of any N
            reference: dict = {}
            for n in levels:
                plan = Plan(n, 1 if small else ROUNDS.get(n, 1), time.monotonic() + args.seconds)
                before = rss_mib(server.process.pid) or 0.0
                tally, wall, exact = run_level(server, folder, media, plan)
                after = rss_mib(server.process.pid) or 0.0
                peak = rss_mib(server.process.pid, "VmHWM") or 0.0
                report(plan, tally, wall, exact, (before, after, peak), reference)
                if not server.alive():
                    raise RuntimeError(f"the app died at N={n}:\n{server.log_tail()}")
            figure("load: the first classify after start (cold)", cold, "s", baseline=reference.get("/classify p50"),
                   baseline_what=f"/classify p50 at N={levels[0]}", note="builds the extractor's networks")  # fmt: skip
        except BaseException:
            print(f"app log (tail):\n{server.log_tail()}", file=sys.stderr)
            raise
        finally:
            server.stop()


if __name__ == "__main__":
    main()
