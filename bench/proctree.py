"""CPU seconds and peak RSS of a process tree, from /proc (Linux only, no psutil).

`TreeSampler(root).sample()` walks the descendants of `root` (ppid links from /proc/*/stat) and keeps, per pid,
the last values seen: utime+stime (/proc/<pid>/stat), VmHWM and VmRSS (/proc/<pid>/status), and its command
line (read each time: a launcher may `exec` into another program under the same pid). A process that exits
between two samples keeps its last sampled figures, so call `sample()` often (the fleet bench: every 0.2 s).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _read(path: str) -> str | None:
    try:
        with open(path, "rb") as handle:
            return handle.read().decode(errors="replace")
    except OSError:
        return None


def _stat(pid: int) -> tuple[int, float] | None:
    """(ppid, cpu seconds) of a pid, or None if it is gone."""
    text = _read(f"/proc/{pid}/stat")
    if not text:
        return None
    rest = text[text.rfind(")") + 2 :].split()
    # after "pid (comm) ": state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt utime stime
    return int(rest[1]), (int(rest[11]) + int(rest[12])) / CLK_TCK


def _memory_kb(pid: int) -> tuple[int, int]:
    """(VmHWM, VmRSS) in kB; zeros if unknown (a zombie has none)."""
    hwm = rss = 0
    for line in (_read(f"/proc/{pid}/status") or "").splitlines():
        if line.startswith("VmHWM:"):
            hwm = int(line.split()[1])
        elif line.startswith("VmRSS:"):
            rss = int(line.split()[1])
    return hwm, rss


@dataclass
class ProcFigures:
    pid: int
    cmdline: str = ""
    cpu_s: float = 0.0
    hwm_kb: int = 0
    rss_kb: int = 0


@dataclass
class TreeSampler:
    root: int
    classify: Callable[[int, int, str], str] | None = None  # (pid, root, cmdline) -> role; see `role` below
    procs: dict[int, ProcFigures] = field(default_factory=dict)
    peak_together_kb: dict[str, int] = field(default_factory=dict)  # max of simultaneous VmRSS sums, per key
    samples: int = 0

    def descendants(self) -> list[int]:
        children: dict[int, list[int]] = {}
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            stat = _stat(int(entry.name))
            if stat is not None:
                children.setdefault(stat[0], []).append(int(entry.name))
        found, todo = [], [self.root]
        while todo:
            pid = todo.pop()
            found.append(pid)
            todo.extend(children.get(pid, ()))
        return found

    def sample(self) -> None:
        self.samples += 1
        now_rss: dict[str, int] = {}
        for pid in self.descendants():
            stat = _stat(pid)
            if stat is None:
                continue
            hwm, rss = _memory_kb(pid)
            cmdline = (_read(f"/proc/{pid}/cmdline") or "").replace("\0", " ").strip()
            figures = self.procs.setdefault(pid, ProcFigures(pid))
            figures.cpu_s = stat[1]
            if cmdline:
                figures.cmdline = cmdline
            if hwm:  # a zombie reports none: keep the last real figure
                figures.hwm_kb, figures.rss_kb = hwm, rss
            role = self.role(pid)
            now_rss[role] = now_rss.get(role, 0) + rss
        now_rss["all"] = sum(now_rss.values())
        now_rss["engine+program+provider"] = sum(now_rss.get(r, 0) for r in ("engine", "program", "provider"))
        for key, value in now_rss.items():
            self.peak_together_kb[key] = max(self.peak_together_kb.get(key, 0), value)

    def role(self, pid: int) -> str:
        cmdline = self.procs[pid].cmdline if pid in self.procs else ""
        if callable(self.classify):
            return self.classify(pid, self.root, cmdline)
        return "root" if pid == self.root else "other"

    def by_role(self) -> dict[str, dict[str, float]]:
        """role -> {cpu_s, peak_rss_mb (sum of the VmHWM of its processes), processes}."""
        out: dict[str, dict[str, float]] = {}
        for pid, figures in self.procs.items():
            entry = out.setdefault(self.role(pid), {"cpu_s": 0.0, "peak_rss_mb": 0.0, "processes": 0})
            entry["cpu_s"] += figures.cpu_s
            entry["peak_rss_mb"] += figures.hwm_kb * 1024 / 1e6
            entry["processes"] += 1
        for entry in out.values():
            entry["cpu_s"] = round(entry["cpu_s"], 2)
            entry["peak_rss_mb"] = round(entry["peak_rss_mb"], 1)
        return out
