"""`make rehearsal`: the whole road from nothing to a live Space (README, "From nothing to a live Space"), walked
here at UCF-GZSL's real size on loopback stand-ins of the real hosts, every stage timed with its peak memory.

    archive    avgzsl_benchmark_datasets.zip in the public layout: UCF's real classes and cls class splits
               (kda/split_roles), the real number of videos in every feature folder (AVCA's class-split CSVs),
               synthetic feature values (kda.synth), deflated as the publisher's zip is
    hosts      the archive and a released-descriptions CSV of the bench's own, in the authors' format, on a
               loopback file server with HTTP Range (tests/file_server.py) that breaks the archive's first
               transfer off half way; a loopback Hugging Face Hub (tests/hub_server.py)
    reproduce  kda reproduce --dataset UCF --setting cls --knowledge released --source <the loopback archive>,
               KDA_RELEASED_ROOT and KDA_RELEASED_SHA256 naming the bench's CSV, the paper preset's epochs
    push       kda push OUT/paper-released-knowledge --repo OWNER/MODEL
    space      kda space OWNER/SPACE --checkpoint <the pinned id push printed on its last line>
    app        the Space's files downloaded, app.py started from them alone (a fresh venv that sees only the
               third-party packages, the Space's variables as its environment), a reference sample classified
               through gradio_client

The commands run as the user runs them, in child processes; a stage's peak memory is the peak resident set of
its command's process (PEAK_OF), the app's of its server, the archive's of this process. The text encoder is the
paper's CLIP ViT-B/32 architecture on seeded random weights (OFFLINE_TEXT_ENCODER): its cost is the
architecture's, not the weights' (as in bench_train.py); a user's first run also downloads the real weights once
(about 600 MB).

    python bench/rehearsal.py [--epochs N] [--work build/rehearsal]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the loopback hosts and the app's starter, as the e2e tests use them

from app_server import fresh_venv, start_app  # noqa: E402
from file_server import FileServer, released_csv  # noqa: E402
from hub_server import TOKEN, LoopbackHub, hub_env  # noqa: E402
from record import at_most, figure, peak_memory, rss_mib  # noqa: E402

from kda.knowledge import OFFLINE_TEXT_ENCODER  # noqa: E402
from kda.knowledge.sources import DIGEST_VARIABLE, RELEASED_FILES, ROOT_VARIABLE  # noqa: E402
from kda.reproduce import ARCHIVE_NAME  # noqa: E402
from kda.synth import SynthConfig, write_synthetic_benchmark  # noqa: E402
from kda.train import TrainConfig  # noqa: E402

# UCF-GZSL's cls videos per feature folder, counted from AVCA's class-split CSVs (the rows of each split's
# classes): 30 training classes, 12 validation-unseen, 6 test-unseen. Stage 2 trains on the first three.
UCF_CLS_VIDEOS = {
    "stage_1_train": 3174,
    "stage_1_val_seen": 353,
    "stage_1_val_unseen": 1467,
    "stage_2_test_seen": 555,
    "stage_2_test_unseen": 845,
}
DESCRIPTION_WORDS = 42  # about the length of each released description
MODEL, SPACE = "rehearsal/kda-ucf-cls", "rehearsal/kda-studio"
TARGET_S = 30 * 60  # the three commands, on a laptop CPU (issue 18)
GZSL = "GZSL: all classes"
# A command's peak resident set, as its parent sees it (wait4's ru_maxrss). Measured from a small parent: a child
# forked from this bench's process keeps that process's peak as its own through exec (Linux carries the maximum
# over), so the bench's own memory would count as the command's.
PEAK_OF = """
import resource, subprocess, sys
code = subprocess.call(sys.argv[2:])
open(sys.argv[1], "w").write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
sys.exit(code)
"""
DOWNLOAD_SPACE = """
import sys
from huggingface_hub import snapshot_download
snapshot_download(sys.argv[1], repo_type="space", local_dir=sys.argv[2])
"""


@dataclass
class Child:
    """A finished child process: its output, its wall time, its peak resident memory, and its stderr pieces (split
    at newlines and carriage returns, as progress bars redraw) with the second each arrived."""

    stdout: str
    seconds: float
    peak_mib: float
    pieces: list[tuple[float, str]] = field(default_factory=list)

    def first(self, pattern: str) -> float | None:
        """Seconds from the start to the first stderr piece matching `pattern`."""
        return next((t for t, piece in self.pieces if re.search(pattern, piece)), None)


def follow(stream, log: Path, start: float, pieces: list[tuple[float, str]]) -> None:
    """Read a child's stderr to its end, split at newlines and carriage returns (progress bars redraw with one),
    each piece kept with the second it came and written to `log` at once, to follow a long run."""
    with log.open("w", buffering=1) as record:
        rest, ended = b"", False
        while not ended:
            chunk = os.read(stream.fileno(), 65536)
            ended = not chunk
            *done, rest = re.split(rb"[\r\n]", rest + chunk + b"\n" * ended)
            for piece in (p.decode(errors="replace") for p in done if p.strip()):
                pieces.append((time.monotonic() - start, piece))
                record.write(f"[{pieces[-1][0]:8.1f} s] {piece}\n")


def run_child(command: list[str], env: dict[str, str], log: Path) -> Child:
    """Run `command` in ROOT under PEAK_OF and wait for it; its stderr goes to `log` with each piece's time. A
    failure ends the rehearsal with the log's tail."""
    start = time.monotonic()
    peak_file = log.with_suffix(".peak")
    measured = [sys.executable, "-c", PEAK_OF, str(peak_file), *command]
    env = env | {"PYTHONUNBUFFERED": "1"}  # stderr pieces timed as they are written
    process = subprocess.Popen(measured, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, pieces = [], []

    readers = [
        threading.Thread(target=follow, args=(process.stderr, log, start, pieces)),
        threading.Thread(target=lambda: out.append(process.stdout.read())),
    ]
    for reader in readers:
        reader.start()
    process.wait()
    seconds = time.monotonic() - start
    for reader in readers:
        reader.join()
    if process.returncode != 0:
        tail = "\n".join(piece for _, piece in pieces[-30:])
        raise SystemExit(f"{' '.join(command[1:4])} exited with {process.returncode}:\n{tail}")
    return Child(out[0].decode(), seconds, int(peak_file.read_text()) / 1024, pieces)  # ru_maxrss: KiB on Linux


def build_archive(folder: Path) -> Path:
    """avgzsl_benchmark_datasets.zip holding UCF's class splits and cls features at the real split sizes."""
    root = folder / "avgzsl_benchmark_datasets" / "UCF"
    write_synthetic_benchmark(root, "UCF", "cls", SynthConfig(folder_videos=UCF_CLS_VIDEOS))
    for extra in ("knowledge_vectors.npz", "synthetic.json"):  # kda synth's own files, not in the public archive
        (root / extra).unlink()
    path = folder / ARCHIVE_NAME
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for file in sorted(root.rglob("*")):
            if file.is_file():
                zf.write(file, file.relative_to(folder).as_posix())
    shutil.rmtree(folder / "avgzsl_benchmark_datasets")
    return path


def kda(*args: str) -> list[str]:
    return [sys.executable, "-m", "kda", *args]


def show(command: list[str], env: dict[str, str] | None = None) -> None:
    """Print a kda command as a user types it, after the settings it adds to the environment."""
    settings = [f"{k}={v}" for k, v in (env or {}).items()]
    print("$", shlex.join([*settings, "python", *command[1:]]), flush=True)


def reproduce(hosts: FileServer, work: Path, env: dict[str, str], epochs: int) -> tuple[Child, Path]:
    """`kda reproduce` from the loopback hosts; checks that the broken-off transfer was resumed."""
    csv_file = hosts.files[RELEASED_FILES["UCF"].path]
    env = env | {ROOT_VARIABLE: hosts.url, DIGEST_VARIABLE: f"UCF={hashlib.sha256(csv_file).hexdigest()}"}
    command = kda("reproduce", "--dataset", "UCF", "--setting", "cls", "--knowledge", "released",
                  "--source", hosts.url + ARCHIVE_NAME, "--out", str(work / "out"),
                  "--text-encoder", OFFLINE_TEXT_ENCODER)  # fmt: skip
    if epochs != TrainConfig.epochs:  # the default is the user's command as it stands in the README
        command += ["--epochs", str(epochs)]
    show(command, {k: env[k] for k in (ROOT_VARIABLE, DIGEST_VARIABLE)})
    hosts.cut = 1  # the archive's first transfer breaks off half way
    child = run_child(command, env, work / "reproduce.log")
    size = len(hosts.files[ARCHIVE_NAME])
    if hosts.ranges[:2] != [None, f"bytes={size - size // 2}-"]:
        raise SystemExit(f"the archive's download did not resume where it broke off: requests {hosts.ranges}")
    print(f"archive download broken off at {size - size // 2:,} of {size:,} bytes, resumed with an HTTP Range request")
    print(child.stdout, end="")
    return child, work / "out" / "paper-released-knowledge"


def reproduce_profile(child: Child, epochs: int) -> None:
    """Where reproduce's time went, from the moments its own log lines and progress bars first appeared."""
    marks = [
        ("download + SHA-256 of the archive", child.first(r"archive .* verified")),
        ("unpack UCF cls", child.first(r"^unpacked ")),
        ("imports, released CSV, CLIP build and text encoding, features read", child.first(r"^stage 1")),
        (f"stage 1: {epochs} epochs, each validated with its beta search", child.first(r"^stage 2")),
        ("stage 2 + test + checkpoint", child.seconds),
    ]
    before = 0.0
    for what, at in marks:
        if at is None:
            print(f"  reproduce, {what}: not seen in its output")
            continue
        print(f"  reproduce, {what}: {at - before:.1f} s")
        before = at


def start_space(hub: LoopbackHub, endpoint: str, work: Path) -> tuple[list[tuple[str, float, float | None]], dict]:
    """Download the Space, start its app.py from those files alone and classify reference sample 0."""
    stages = []
    folder = work / "space"
    fetched = run_child([sys.executable, "-c", DOWNLOAD_SPACE, SPACE, str(folder)],
                        hub_env(endpoint, work / "hf-download"), work / "download.log")  # fmt: skip
    stages.append(("download the Space's files", fetched.seconds, fetched.peak_mib))
    python = fresh_venv(work / "venv")
    variables = {key: v["value"] for key, v in hub.repo("space", SPACE).variables.items()}  # what the Space sets
    env = hub_env(endpoint, work / "hf-space") | variables | {"PYTHONPATH": "", "KDA_CACHE": str(work / "space-cache")}
    server = start_app(work / "app.log", env=env, python=str(python), folder=folder)
    try:
        stages.append(("app.py from the Space's files: start to first page", server.ready_s, None))
        start = time.monotonic()
        prediction = server.client().predict("0", 5, GZSL, api_name="/classify_sample")[-1]
        stages.append(("classify reference sample 0 (gradio_client)", time.monotonic() - start, None))
        peak = rss_mib(server.process.pid, "VmHWM")
        stages[-2:] = [(name, seconds, peak) for name, seconds, _ in stages[-2:]]  # the app server's peak
    finally:
        server.stop()
    if (MODEL, "model.safetensors") not in hub.downloads:
        raise SystemExit("the Space's app did not load the pushed checkpoint from the Hub")
    return stages, prediction


def rehearse(work: Path, epochs: int) -> None:
    started = time.monotonic()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    for key in [k for k in os.environ if k.startswith(("HF_", "KDA_"))]:
        del os.environ[key]  # nothing of this shell's settings leaks into the children
    print(f"text encoder {OFFLINE_TEXT_ENCODER} (CLIP ViT-B/32's architecture, seeded random weights); {epochs} epochs")
    with peak_memory() as peak:
        start = time.monotonic()
        archive = build_archive(work / "archive")
    figure("rehearsal: build the archive", time.monotonic() - start, "s", peak_mib=peak.mib,
           note=f"{archive.stat().st_size / 2**20:,.0f} MiB, {sum(UCF_CLS_VIDEOS.values()):,} videos")  # fmt: skip
    csv_file = released_csv("UCF", words=DESCRIPTION_WORDS)
    hosts = FileServer({ARCHIVE_NAME: archive.read_bytes(), RELEASED_FILES["UCF"].path: csv_file})
    hub = LoopbackHub()
    try:
        with hub as endpoint:
            env = hub_env(endpoint, work / "hf", TOKEN) | {"KDA_CACHE": str(work / "cache"), "PYTHONPATH": str(ROOT)}
            made, checkpoint = reproduce(hosts, work, env, epochs)
            figure("rehearsal: kda reproduce", made.seconds, "s", peak_mib=made.peak_mib)
            reproduce_profile(made, epochs)
            print(f"the loopback Hub: HF_ENDPOINT={endpoint}, HF_TOKEN set")
            show(push := kda("push", str(checkpoint), "--repo", MODEL))
            pushed = run_child(push, env, work / "push.log")
            pinned = pushed.stdout.splitlines()[-1]
            figure("rehearsal: kda push", pushed.seconds, "s", peak_mib=pushed.peak_mib, note=pinned)
            show(command := kda("space", SPACE, "--checkpoint", pinned))
            space = run_child(command, env, work / "space.log")
            figure(
                "rehearsal: kda space", space.seconds, "s", peak_mib=space.peak_mib, note=space.stdout.splitlines()[-1]
            )
            commands = made.seconds + pushed.seconds + space.seconds
            stages, prediction = start_space(hub, endpoint, work)
    finally:
        hosts.close()
    for name, seconds, peak_mib in stages:
        figure(f"rehearsal: {name}", seconds, "s", peak_mib=peak_mib)
    top = prediction["gzsl"][0]
    print(f"the Space's app answered: {prediction['source']}; top class {top['name']} (score {top['score']:.3f})")
    figure("rehearsal: the three commands (reproduce + push + space)", commands, "s", budget=at_most(TARGET_S, "s"))
    print(f"rehearsal total: {time.monotonic() - started:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=TrainConfig.epochs, help="stage-1 epochs of kda reproduce")
    parser.add_argument("--work", type=Path, default=ROOT / "build" / "rehearsal", help="folder for everything made")
    args = parser.parse_args()
    rehearse(args.work.resolve(), args.epochs)


if __name__ == "__main__":
    main()
