"""Long-running processes a test starts (``dagster-webserver``, ``dagster-daemon``), each in its
own process group, stopped with every descendant (code servers, run workers) so none outlives
the test."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stat(pid: int | str) -> tuple[int, int] | None:
    """(parent pid, start time) of a live process, from /proc; None if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[1]), int(fields[19])


def _descendants(pid: int) -> dict[int, int]:
    """Every process below ``pid`` with its start time, so none of them outlives the test."""
    children: dict[int, list[tuple[int, int]]] = {}
    for entry in Path("/proc").iterdir():
        stat = _stat(entry.name) if entry.name.isdigit() else None
        if stat is not None:
            children.setdefault(stat[0], []).append((int(entry.name), stat[1]))
    found: dict[int, int] = {}
    todo = [pid]
    while todo:
        for child, started in children.get(todo.pop(), []):
            found[child] = started
            todo.append(child)
    return found


def _signal(processes: dict[int, int], sig: signal.Signals) -> None:
    """Signal each process that is still the one recorded (same pid and start time)."""
    for pid, started in processes.items():
        stat = _stat(pid)
        if stat is not None and stat[1] == started:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)


@dataclass
class Service:
    """One long-running process of the deployment, in its own process group."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 60) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM to the group and every descendant (code servers, run workers), then KILL."""
        pid = self.process.pid
        tree = _descendants(pid)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if self.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, sig)
            tree.update(_descendants(pid))
            _signal(tree, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=10)

    @classmethod
    def start(
        cls, name: str, command: list[str], cwd: Path, env: dict[str, str], log: Path
    ) -> Service:
        """Start ``command`` in a new session, its output (both streams) into ``log``."""
        with log.open("wb") as out:
            process = subprocess.Popen(
                command,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return cls(name, process, log)
