"""One measured figure, beside its baseline from the same run: what every bench reports through.

A bench calls `figure(...)` for each thing it measures. The figure is printed as one line; when the bench runs
under `bench/run.py`, it is also appended (one JSON object a line) to the file named by $KDA_BENCH_RECORD, which
the runner collects into the run's results file. Run alone, a bench prints the same lines and writes nothing.

    from record import at_most, figure, peak_memory
    with peak_memory() as peak:
        runs = [...]                                  # seconds of each run
    figure("t-SNE, 2,000 points", runs, "s", baseline=[...], baseline_what="sklearn's defaults",
           budget=at_most(10.0, "s"), peak_mib=peak.mib)

`value` is the median of the runs (the baseline's likewise) and `ratio` is value / baseline: under 1 is faster
than the baseline for times. Budgets are README.md's ("Budgets"); a figure without one records none.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import statistics
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

RECORD_ENV = "KDA_BENCH_RECORD"  # the JSON-lines file the runner collects; unset: print only
QUICK_ENV = "KDA_BENCH_QUICK"  # "1" when the runner asks every bench for its quick, small sizes


@dataclass(frozen=True)
class Budget:
    text: str  # how the README states it, e.g. "<= 3 s" or ">= 5x faster than the baseline"
    holds: Callable[[float, float | None], bool]  # (value, baseline) -> within the budget


def at_most(limit: float, unit: str) -> Budget:
    return Budget(f"<= {limit:g} {unit}", lambda value, _: value <= limit)


def at_least(limit: float, unit: str) -> Budget:
    return Budget(f">= {limit:g} {unit}", lambda value, _: value >= limit)


def times_faster(factor: float) -> Budget:
    """The baseline takes at least `factor` times as long as the figure."""
    return Budget(
        f">= {factor:g}x faster than the baseline", lambda value, base: base is not None and base >= factor * value
    )


@dataclass
class Figure:
    bench: str  # the script that measured it
    name: str
    value: float  # median of `runs`
    unit: str
    runs: list[float] = field(default_factory=list)
    baseline: float | None = None  # median of `baseline_runs`, measured in the same run
    baseline_what: str = ""
    baseline_runs: list[float] = field(default_factory=list)
    ratio: float | None = None  # value / baseline
    budget: str = ""
    holds: bool | None = None  # None: no budget
    peak_mib: float | None = None  # peak resident memory while it was measured, where measured
    note: str = ""


def quick() -> bool:
    return os.environ.get(QUICK_ENV) == "1" or "--quick" in sys.argv


def as_runs(measured: float | Sequence[float] | None) -> list[float]:
    if measured is None:
        return []
    return [float(x) for x in measured] if isinstance(measured, Sequence) else [float(measured)]


def figure(
    name: str,
    measured: float | Sequence[float],
    unit: str,
    baseline: float | Sequence[float] | None = None,
    baseline_what: str = "",
    budget: Budget | None = None,
    peak_mib: float | None = None,
    note: str = "",
) -> Figure:
    """Record one figure (a value or the runs of it) and print it; returns it."""
    runs, base_runs = as_runs(measured), as_runs(baseline)
    value = statistics.median(runs)
    base = statistics.median(base_runs) if base_runs else None
    result = Figure(
        bench=Path(sys.argv[0]).stem,
        name=name,
        value=value,
        unit=unit,
        runs=runs,
        baseline=base,
        baseline_what=baseline_what,
        baseline_runs=base_runs,
        ratio=value / base if base else None,
        budget=budget.text if budget else "",
        holds=budget.holds(value, base) if budget else None,
        peak_mib=peak_mib,
        note=note,
    )
    print(describe(result), flush=True)
    if path := os.environ.get(RECORD_ENV):
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps(asdict(result)) + "\n")
    return result


def amount(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "s" and value < 1:
        return f"{value * 1000:.1f} ms"
    return f"{value:,.3g} {unit}" if abs(value) < 100 else f"{value:,.0f} {unit}"


def describe(f: Figure) -> str:
    text = f"[figure] {f.name}: {amount(f.value, f.unit)}"
    if len(f.runs) > 1:
        text += f" (median of {len(f.runs)})"
    if f.baseline is not None:
        text += f"; baseline {amount(f.baseline, f.unit)} ({f.baseline_what}); ratio {f.ratio:.3g}x"
    if f.budget:
        text += f"; budget {f.budget}: {'holds' if f.holds else 'OVER'}"
    if f.peak_mib is not None:
        text += f"; peak {f.peak_mib:,.0f} MiB"
    return text + (f"; {f.note}" if f.note else "")


# ---------------------------------------------------------------------------------------------
# Memory


def rss_mib(pid: int | str = "self", field_name: str = "VmRSS") -> float | None:
    """A process's resident memory (VmRSS) or its peak since the last reset (VmHWM), in MiB; None off Linux."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


class Peak:
    mib: float | None = None


@contextlib.contextmanager
def peak_memory() -> Iterator[Peak]:
    """This process's peak resident memory during the block, in MiB. Linux lets a process reset its peak
    (writing 5 to /proc/self/clear_refs); where it cannot, the peak since the process started is reported."""
    peak = Peak()
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")
    try:
        yield peak
    finally:
        peak.mib = rss_mib("self", "VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
