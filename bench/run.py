"""`make bench`: run every bench in its own process (each bounded in time), collect the figures they record
(bench/record.py), and write one results file, `bench/results/<UTC time>.json`, with the machine it ran on,
and print one table.

    python bench/run.py                     # every bench, full sizes (about 15 minutes on 2 cores)
    python bench/run.py --quick             # small sizes, to try the machinery (written under build/bench/)
    python bench/run.py --only bench_train bench_load

A bench that fails or runs out of time is recorded as such, with its output's tail; the others still run, and
the runner exits non-zero at the end. Budgets over are reported, not failures: the README says why.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from record import QUICK_ENV, RECORD_ENV, amount

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
QUICK_RESULTS = ROOT / "build" / "bench"
OUTPUT_KEPT = 20_000  # characters of each bench's output kept in the results file


@dataclass(frozen=True)
class Bench:
    script: str  # bench/<script>.py
    full: tuple[str, ...] = ()  # its arguments in a full run
    quick: tuple[str, ...] = ("--quick",)  # ... and in a quick one
    limit_s: float = 300.0  # a full run's time limit; quick runs get a third (at least 60 s)


# In the order they run: the costliest last, so that a slow machine still records the cheap ones.
BENCHES = (
    Bench("bench_beta_search", limit_s=120),
    Bench("bench_knowledge", limit_s=180),
    Bench("bench_knowledge_ab", limit_s=120),
    Bench("bench_analysis", limit_s=300),
    Bench("bench_extract", limit_s=240),
    Bench("bench_scale", full=("--quick",), limit_s=240),  # its 10-minute 1080p video alone takes minutes
    Bench("bench_studio", limit_s=240),
    Bench("bench_train", limit_s=480),
    Bench(
        "bench_app",
        ("--starts", "2", "--repeat", "3", "--cheap", "5"),
        ("--starts", "1", "--repeat", "1", "--cheap", "2"),
        420,
    ),
    Bench("bench_load", limit_s=480),
    Bench("gpu_check", full=(), quick=(), limit_s=300),
)


def git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else ""


def memory_mib() -> dict:
    info = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        key, value = line.split(":", 1)
        if key in ("MemTotal", "MemAvailable"):
            info[key] = int(value.split()[0]) // 1024
    return {"total_mib": info.get("MemTotal"), "available_mib": info.get("MemAvailable")}


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def machine() -> dict:
    versions = subprocess.run(
        [
            sys.executable,
            "-c",
            "import torch, numpy; print(torch.__version__, torch.get_num_threads(), numpy.__version__)",
        ],
        capture_output=True,
        text=True,
    ).stdout.split()
    return {
        "cores": os.cpu_count(),
        "cpu": cpu_model(),
        "memory": memory_mib(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": versions[0] if versions else None,
        "torch_threads": int(versions[1]) if len(versions) > 1 else None,
        "numpy": versions[2] if len(versions) > 2 else None,
        "cuda_visible": os.environ.get("CUDA_VISIBLE_DEVICES"),
    }


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def reaped(process: subprocess.Popen, seconds: float):
    """The bench's resource usage once it has exited, polled for up to `seconds`; None while it runs."""
    deadline = time.monotonic() + seconds
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            process.returncode = os.waitstatus_to_exitcode(status)
            return usage
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.2)


def stop(process: subprocess.Popen):
    """SIGTERM to the bench's whole process group (its app servers too), SIGKILL after 15 s; its usage."""
    for sig, grace in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
        os.killpg(process.pid, sig)  # the group outlives its leader until reaped: never a stranger's
        if usage := reaped(process, grace):
            return usage
    return None


def run_bench(bench: Bench, quick: bool) -> dict:
    """Run one bench; its figures, status, seconds, peak memory and output."""
    args = bench.quick if quick else bench.full
    limit = max(bench.limit_s / 3, 60.0) if quick else bench.limit_s
    command = [sys.executable, str(ROOT / "bench" / f"{bench.script}.py"), *args]
    print(f"\n=== {bench.script} {' '.join(args)} (limit {limit:.0f} s, load {load_average()})", flush=True)
    with tempfile.NamedTemporaryFile("r", suffix=".jsonl", prefix="kda-bench-") as record:
        env = {**os.environ, RECORD_ENV: record.name, QUICK_ENV: "1" if quick else "0", "PYTHONUNBUFFERED": "1"}
        start = time.monotonic()
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
        )
        lines: list[str] = []
        reader = threading.Thread(target=echo, args=(process.stdout, lines), daemon=True)
        reader.start()
        try:
            status, rc, peak = wait(process, limit)
        except BaseException:  # Ctrl-C or SIGTERM: the bench and its app servers go too
            stop(process)
            raise
        seconds = time.monotonic() - start
        reader.join(10)
        figures = [json.loads(line) for line in record.read().splitlines() if line.strip()]
    output = "".join(lines)
    print(f"=== {bench.script}: {status} in {seconds:.0f} s, peak RSS {peak:,.0f} MiB, {len(figures)} figures")
    return {
        "bench": bench.script,
        "command": " ".join(["python", f"bench/{bench.script}.py", *args]),
        "status": status,
        "returncode": rc,
        "seconds": round(seconds, 1),
        "limit_s": limit,
        "peak_rss_mib": round(peak),  # the largest process of the bench's that it waited for
        "figures": figures,
        "output": output[-OUTPUT_KEPT:],
    }


def echo(stream, lines: list[str]) -> None:
    for line in iter(stream.readline, b""):
        text = line.decode(errors="replace")
        lines.append(text)
        sys.stdout.write(text)
        sys.stdout.flush()


def wait(process: subprocess.Popen, limit: float) -> tuple[str, int | None, float]:
    """('ok' | 'failed' | 'timed out', return code, peak RSS in MiB) of a bench, stopped at `limit` seconds."""
    if usage := reaped(process, limit):
        with contextlib.suppress(ProcessLookupError):  # anything it left running (a crashed bench's app server)
            os.killpg(process.pid, signal.SIGKILL)
        return ("ok" if process.returncode == 0 else "failed"), process.returncode, usage.ru_maxrss / 1024
    usage = stop(process)
    return "timed out", None, usage.ru_maxrss / 1024 if usage else 0.0


def table(results: list[dict]) -> str:
    """One line per figure: value, baseline, ratio, budget; then the benches that did not finish."""
    head = f"{'bench':<18} {'figure':<58} {'value':>11} {'baseline':>11} {'ratio':>8}  {'budget':<34} peak MiB"
    rows = [head, "-" * len(head)]
    for result in results:
        for f in result["figures"]:
            budget = f"{f['budget']}: {'holds' if f['holds'] else 'OVER'}" if f["budget"] else ""
            ratio = f"{f['ratio']:.3g}x" if f["ratio"] is not None else "-"
            peak = f"{f['peak_mib']:,.0f}" if f["peak_mib"] is not None else ""
            rows.append(
                f"{result['bench'][:18]:<18} {f['name'][:58]:<58} {amount(f['value'], f['unit']):>11} "
                f"{amount(f['baseline'], f['unit']):>11} {ratio:>8}  {budget:<34} {peak}"
            )
    for result in results:
        rows.append(
            f"{result['bench']}: {result['status']} in {result['seconds']:.0f} s, peak RSS "
            f"{result['peak_rss_mib']:,} MiB"
        )
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes; results under build/bench/")
    parser.add_argument("--only", nargs="+", metavar="BENCH", help="these benches only (script names)")
    parser.add_argument("--out", type=Path, help="the results file (default: bench/results/<UTC time>.json)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))  # stops the running bench too
    known = {b.script for b in BENCHES}
    if args.only and (unknown := sorted(set(args.only) - known)):
        parser.error(f"unknown bench(es) {unknown}; known: {sorted(known)}")
    benches = [b for b in BENCHES if not args.only or b.script in args.only]

    started = datetime.now(timezone.utc)
    stamp = started.strftime("%Y-%m-%dT%H%M%SZ")
    out = args.out or (QUICK_RESULTS / f"{stamp}-quick.json" if args.quick else RESULTS / f"{stamp}.json")
    run = {
        "started": started.isoformat(timespec="seconds"),
        "mode": "quick" if args.quick else "full",
        "commit": git("rev-parse", "HEAD"),
        "uncommitted_changes": bool(git("status", "--porcelain", "--untracked-files=no")),
        "machine": machine(),
        "load_average_before": load_average(),  # 1, 5, 15 minutes
    }
    results = [run_bench(b, args.quick) for b in benches]
    run |= {
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "seconds": round((datetime.now(timezone.utc) - started).total_seconds()),
        "load_average_after": load_average(),
        "benches": results,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(run, indent=1) + "\n", encoding="utf-8")
    print(f"\n{table(results)}\n")
    print(
        f"{len(results)} benches in {run['seconds']} s; load {run['load_average_before']} -> {run['load_average_after']}"
    )
    print(f"results: {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
    failed = [r["bench"] for r in results if r["status"] != "ok"]
    if failed:
        print(f"did not finish: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
