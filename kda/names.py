"""Matching classes by name: the one rule every part of kda binds classes with (benchmark files, knowledge,
knowledge vectors, checkpoints): case-insensitive, by id first and readable name second, never by position."""

from __future__ import annotations

from collections.abc import Sequence

Aliases = str | Sequence[str]  # a class id, or (id, readable name, ...) in order of precedence


def class_key(name: str) -> str:
    """Case-insensitive key classes are matched by (UCF spells `HandStandPushups` and `HandstandPushups` in
    different files)."""
    return name.strip().casefold()


def aliases_of(item: Aliases) -> tuple[str, ...]:
    return (item,) if isinstance(item, str) else tuple(item)


def match_classes(wanted: Sequence[Aliases], available: Sequence[Aliases]) -> list[int | None]:
    """For each wanted class, the index of the available class it names, or None.

    Each class is a name or a tuple of aliases (id, readable name). Every available class's first alias is
    looked up before any class's second one, so an id always wins over another class's readable name.
    """
    available = [aliases_of(a) for a in available]
    index: dict[str, int] = {}
    for rank in range(max((len(a) for a in available), default=0)):
        for i, aliases in enumerate(available):
            if rank < len(aliases):
                index.setdefault(class_key(aliases[rank]), i)
    return [next((index[k] for k in map(class_key, aliases_of(w)) if k in index), None) for w in wanted]
