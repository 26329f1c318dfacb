"""How much CPU other programs took while a benchmark ran, so a noisy figure shows as noisy.

On a shared 2-core machine one stray test run halves decode speed; each script records the
CPU seconds that neither it nor its children used (`foreign_cpu_s`) next to its numbers.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time


def _busy_seconds() -> float:
    """CPU seconds spent not idle, summed over all cores, since boot."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:9]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields) - idle) / os.sysconf("SC_CLK_TCK")


def _own_seconds() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _self_seconds() -> float:
    t = os.times()
    return t.user + t.system


def _process_seconds(pid: int) -> float:
    """CPU seconds a running process (and its waited-for children) has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


class ForeignLoad:
    """start()/stop() or a with block; then `.report()` gives our and other programs' CPU time.

    Children count as our own only once they have been waited for, so wait for a server
    before stop(); pass its pid to start() so the CPU it spent before then is not counted.
    """

    started = False

    def start(self, child_pid: int | None = None) -> ForeignLoad:
        self.wall0, self.busy0, self.own0 = time.monotonic(), _busy_seconds(), _own_seconds()
        self.own0 += _process_seconds(child_pid) if child_pid else 0.0
        self.self0 = _self_seconds()
        self.started = True
        return self

    def stop(self) -> None:
        self.wall = time.monotonic() - self.wall0
        self.busy = _busy_seconds() - self.busy0
        self.own = _own_seconds() - self.own0
        self.self_ = _self_seconds() - self.self0

    def __enter__(self) -> ForeignLoad:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def report(self) -> dict:
        foreign = max(self.busy - self.own, 0.0)
        return {
            "wall_s": round(self.wall, 2),
            "own_cpu_s": round(self.own, 2),
            # This process alone: the benchmark client's cost when a server is measured.
            "self_cpu_s": round(self.self_, 2),
            "foreign_cpu_s": round(foreign, 2),
            # Share of the machine's capacity other programs used while we measured.
            "foreign_share": round(foreign / (self.wall * (os.cpu_count() or 1)), 3),
        }


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(proc: subprocess.Popen) -> None:
    """Terminate a server process, killing it if it does not exit within 10 s."""
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
