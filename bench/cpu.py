"""CPU time of a process on this machine, for the benchmarks' CPU figures (steadier than wall time when
the machine is shared)."""

from __future__ import annotations

import os
from pathlib import Path


def process_cpu(pid: int) -> float:
    """CPU seconds (user and system) process ``pid`` has used so far, from ``/proc`` (Linux); raises
    ``OSError`` when it cannot be read (another machine's process, or one that has ended)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
