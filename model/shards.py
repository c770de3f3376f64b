"""`--shard i/n`: which part of a job this process does, for the commands that split work (synth, eval)."""

from __future__ import annotations


def parse_shard(text: str) -> tuple[int, int]:
    """'i/n' -> (i, n) with 0 <= i < n."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError as exc:
        raise ValueError(f"--shard must look like i/n (e.g. 0/4), not {text!r}") from exc
    if not 0 <= index < count:
        raise ValueError(f"--shard {text}: need 0 <= i < n")
    return index, count
