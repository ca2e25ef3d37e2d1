"""Reading the process table (/proc, Linux) in tests of worker processes."""

from __future__ import annotations

from pathlib import Path


def _stat_fields(pid: int | str) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state first), or None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()


def live_children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` and that have not exited (zombies left out)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(entry.name)
            if fields is not None and int(fields[1]) == pid and fields[0] != "Z":
                found.append(int(entry.name))
    return found


def is_alive(pid: int) -> bool:
    """``pid`` exists and has not exited (a zombie has; init reaps it)."""
    fields = _stat_fields(pid)
    return fields is not None and fields[0] != "Z"
