"""Where the networks run: `--device auto|cpu|cuda[:N]`, resolved in one place for every command and the app."""

from __future__ import annotations

import re

from kda.errors import KdaError

DEVICES = "auto, cpu, cuda or cuda:N"


class DeviceError(KdaError):
    """A device that is malformed or not present on this machine."""


def resolve_device(spec: str = "auto"):
    """`auto`: the first CUDA GPU when there is one, else the CPU. Returns a torch.device."""
    import torch

    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec == "cpu":
        return torch.device("cpu")
    match = re.fullmatch(r"cuda(?::(\d+))?", spec)
    if not match:
        raise DeviceError(f"unknown device {spec!r}; choose {DEVICES}")
    if not torch.cuda.is_available():
        raise DeviceError(f"device {spec!r} asked for, but torch sees no CUDA GPU here; use `device` auto or cpu")
    index = int(match.group(1) or 0)
    if index >= torch.cuda.device_count():
        raise DeviceError(f"device {spec!r}: this machine has {torch.cuda.device_count()} CUDA GPU(s)")
    return torch.device("cuda", index)
