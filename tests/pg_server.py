"""A throwaway PostgreSQL cluster for the tests and benchmarks.

``initdb`` and ``pg_ctl`` from Debian's binaries (``/usr/lib/postgresql/*/bin``) in
a temporary directory, listening on a free port of 127.0.0.1 only (no Unix socket
outside that directory), ``fsync=off`` for speed. When running as root (which the
server refuses) the cluster is created and run as the ``postgres`` user through
``setpriv``. The server is stopped by its pid.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

#: The role whose logins need a password on a cluster started here.
PASSWORD_ROLE = "lk_writer"


def pg_bin() -> Path:
    """The newest ``/usr/lib/postgresql/*/bin`` that has ``initdb``.

    Raises
    ------
    RuntimeError
        No PostgreSQL binaries (``.ci/run`` installs Debian's postgresql-15).
    """
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4])
    )
    if not found:
        raise RuntimeError(
            "no PostgreSQL server binaries under /usr/lib/postgresql/*/bin: install "
            "postgresql-15 (apt-get install postgresql-15) or set LINEAGE_KIT_TEST_PG_DSN"
        )
    return Path(found[-1]).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Cluster:
    """A running throwaway cluster."""

    directory: Path
    port: int
    pid: int
    user: str

    @property
    def dsn(self) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/postgres"

    def crash(self) -> None:
        """Stop the server as a crash would (``pg_ctl stop -m immediate``: every
        server process ends at once, no checkpoint; recovery runs at the next start)."""
        _pg_ctl(self.directory, "-m", "immediate", "-w", "stop")

    def restart(self) -> None:
        """Start the server again after :meth:`crash`, on the same port."""
        self.pid = _launch(self.directory, self.port)

    def stop(self) -> None:
        """Stop the server by its pid (fast shutdown), then remove its directory."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGINT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        shutil.rmtree(self.directory, ignore_errors=True)


def _as_user(user: str | None) -> list[str]:
    if user is None:
        return []
    return ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", "--"]


def _pg_ctl(directory: Path, *command: str) -> subprocess.CompletedProcess[str]:
    run_as = "postgres" if os.geteuid() == 0 else None
    env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
    return subprocess.run(
        [*_as_user(run_as), str(pg_bin() / "pg_ctl"), "-D", str(directory / "data"), *command],
        capture_output=True,
        env=env,
        text=True,
    )


def _launch(directory: Path, port: int) -> int:
    """Start the server of ``directory`` on ``port``; return the postmaster's pid."""
    options = (
        f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={directory} "
        "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
        "-c max_connections=60 -c shared_buffers=128MB"
    )
    log = directory / "server.log"
    started = _pg_ctl(directory, "-l", str(log), "-o", options, "-w", "-t", "60", "start")
    if started.returncode != 0:
        text = log.read_text() if log.exists() else started.stderr
        raise RuntimeError(f"PostgreSQL did not start: {text[-2000:]}")
    return int((directory / "data" / "postmaster.pid").read_text().split()[0])


def start_cluster() -> Cluster:
    """Create and start a cluster; return it once it accepts connections.

    Raises
    ------
    RuntimeError
        The binaries are missing, or the server did not start (its log is quoted).
    """
    bindir = pg_bin()
    run_as = "postgres" if os.geteuid() == 0 else None
    directory = Path(tempfile.mkdtemp(prefix="lk-pg-"))
    data = directory / "data"
    if run_as is not None:
        entry = pwd.getpwnam(run_as)
        os.chown(directory, entry.pw_uid, entry.pw_gid)
    user = run_as or pwd.getpwuid(os.geteuid()).pw_name
    env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
    initdb = [str(bindir / "initdb"), "-D", str(data), "-U", user, "-A", "trust", "-E", "UTF8"]
    subprocess.run(
        [*_as_user(run_as), *initdb],
        check=True,
        capture_output=True,
        env=env,
    )
    # Logins as lk_writer (the tests' writer role) need its password, so that a wrong
    # one is refused; everyone else is trusted (the cluster listens on 127.0.0.1 only).
    hba = data / "pg_hba.conf"
    hba.write_text(f"host all {PASSWORD_ROLE} 127.0.0.1/32 scram-sha-256\n" + hba.read_text())
    port = free_port()
    try:
        pid = _launch(directory, port)
    except RuntimeError:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    return Cluster(directory, port, pid, user)
