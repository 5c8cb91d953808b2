"""Is the process that writes a run still alive?

A run that dies leaves ``status = 'running'`` behind with its writer's host, pid
and process start time. A pid alone is not enough: pids are reused, so a killed
run's pid may later belong to another process (even to the reader asking). On
Linux the start time of a process (``/proc/<pid>/stat``, field 22) tells the two
apart; elsewhere only the pid is checked.
"""

from __future__ import annotations

import os
from pathlib import Path


def host_name() -> str:
    """This machine's host name, as ``socket.gethostname()`` gives it.

    ``os.uname()`` answers the same without importing ``socket`` (a few ms of every
    ``lineage-kit run``); only where it does not exist is ``socket`` asked.

    Examples
    --------
    >>> import socket
    >>> host_name() == socket.gethostname()
    True
    """
    uname = getattr(os, "uname", None)
    if uname is not None:
        return uname().nodename
    import socket

    return socket.gethostname()


def process_start(pid: int) -> str | None:
    """An opaque token for when process ``pid`` started, or None if unknown.

    Returns None where ``/proc`` does not exist or the process is gone.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may contain spaces.
    fields = stat[stat.rindex(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else None


def this_writer() -> tuple[str, int, str | None]:
    """``(host, pid, start token)`` of the current process, as stored with a run."""
    pid = os.getpid()
    return host_name(), pid, process_start(pid)


def writer_alive(host: str | None, pid: int | None, started: str | None = None) -> bool:
    """Whether the process that writes a run may still be running.

    Parameters
    ----------
    host, pid : str and int, or None
        Where the writer ran. A writer on another host cannot be checked from here
        and counts as alive.
    started : str, optional
        The writer's start token (:func:`process_start`). When given and the pid
        now belongs to a process that started at another time, the writer is gone.

    Returns
    -------
    bool
    """
    if host != host_name() or pid is None:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    if started is not None:
        now = process_start(pid)
        if now is not None and now != started:
            return False  # the pid was reused by a later process
    return True
