"""The lineage store: one SQLite file holding runs, steps, lineage entries, parent
links and record values.

Every SQL statement of the package lives in this sub-package, so that another
backend (a shared PostgreSQL store) can follow behind the same
:class:`LineageStore` interface. It is a package rather than one ``store.py``
because opening, writing and reading are separate jobs.
"""

from __future__ import annotations

import os
import socket
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import RunNotFound
from .connection import identify, open_connection
from .schema import APPLICATION_ID, SCHEMA_VERSION
from .writer import transaction

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    import pandas as pd

    from ..checks import CheckFunction, CheckReport

__all__ = ["APPLICATION_ID", "SCHEMA_VERSION", "LineageStore", "connect", "identify"]

RUN_COLUMNS = (
    "run_id",
    "pipeline",
    "started_at",
    "finished_at",
    "status",
    "input_path",
    "input_sha256",
    "n_input",
    "n_published",
    "n_rejected",
    "n_failed",
    "parameters",
    "package_version",
    "error",
    "writer_host",
    "writer_pid",
)
_SELECT_RUNS = f"SELECT {', '.join(RUN_COLUMNS)} FROM runs ORDER BY started_at DESC, rowid DESC"


def writer_alive(host: str | None, pid: int | None) -> bool:
    """Whether the process that writes a run may still be running.

    A writer on another host cannot be checked from here and counts as alive.
    """
    if host != socket.gethostname() or pid is None:
        return True
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class LineageStore:
    """A lineage store: a SQLite file written by lineage_kit pipelines.

    Parameters
    ----------
    path : str or PathLike
        The SQLite file.
    create : bool, default False
        Create the store if the file is missing (pipelines do; readers do not).

    Raises
    ------
    StoreNotFound
        No file at ``path`` and ``create`` is false.
    NotALineageStore
        The file is not a lineage store; it was left byte-for-byte unchanged.
    SchemaVersionError
        The store comes from a newer lineage_kit; it was left unchanged.

    Examples
    --------
    >>> import lineage_kit as lk
    >>> with lk.connect("lineage.db") as store:  # doctest: +SKIP
    ...     store.runs()
    """

    def __init__(self, path: str | os.PathLike[str], *, create: bool = False) -> None:
        self.path = Path(path)
        self._con: sqlite3.Connection | None = open_connection(self.path, create=create)

    # ------------------------------------------------------------------ basics

    @property
    def con(self) -> sqlite3.Connection:
        """The underlying ``sqlite3.Connection`` (autocommit; transactions are explicit)."""
        if self._con is None:
            raise ValueError(f"the store {self.path} is closed")
        return self._con

    def close(self) -> None:
        """Close the connection; the store object cannot be used afterwards."""
        if self._con is not None:
            self._con.close()
            self._con = None

    def __enter__(self) -> LineageStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._con is None else "open"
        return f"<LineageStore {str(self.path)!r} ({state})>"

    @contextmanager
    def atomic(self) -> Iterator[sqlite3.Connection]:
        """A write transaction that rolls back and re-raises on error."""
        with transaction(self.con) as con:
            yield con

    @property
    def schema_version(self) -> int:
        """The store's schema version (``PRAGMA user_version``)."""
        return self.con.execute("PRAGMA user_version").fetchone()[0]

    # -------------------------------------------------------------------- runs

    def run_rows(self) -> list[dict[str, Any]]:
        """Every run as a dict, newest first.

        A run still marked ``running`` whose writing process is gone (it was killed
        or crashed) is reported with status ``interrupted``.
        """
        rows = [dict(zip(RUN_COLUMNS, r, strict=True)) for r in self.con.execute(_SELECT_RUNS)]
        for row in rows:
            if row["status"] == "running" and not writer_alive(
                row["writer_host"], row["writer_pid"]
            ):
                row["status"] = "interrupted"
        return rows

    def resolve_run(self, run: str | None = "latest") -> str:
        """Turn ``"latest"``, a full run id or a unique prefix into a run id.

        Raises
        ------
        RunNotFound
            The store has no runs, or nothing (or more than one run) matches.
        """
        if run is None or run == "latest":
            row = self.con.execute(
                "SELECT run_id FROM runs ORDER BY started_at DESC, rowid DESC LIMIT 1"
            ).fetchone()
            if row is None:
                raise RunNotFound(f"the store {self.path} has no runs yet")
            return row[0]
        if not isinstance(run, str) or not run:
            raise RunNotFound(f"a run is a run id, a unique prefix or 'latest', not {run!r}")
        matches = [
            r[0]
            for r in self.con.execute(
                "SELECT run_id FROM runs WHERE run_id >= ? AND run_id < ? LIMIT 2",
                (run, run + "\U0010ffff"),
            )
        ]
        if not matches:
            raise RunNotFound(f"no run matches {run!r} in {self.path}")
        if len(matches) > 1 and run not in matches:
            raise RunNotFound(f"{run!r} matches more than one run; give more characters")
        return run if run in matches else matches[0]

    def runs(self) -> pd.DataFrame:
        """Every run, newest first, as a typed DataFrame (see :func:`frames.runs_frame`)."""
        from ..frames import runs_frame

        return runs_frame(self)

    # ------------------------------------------------------------------ checks

    def check(
        self,
        run: str | Sequence[str] | None = "latest",
        *,
        expected_steps: Sequence[str] | None = None,
        extra: Iterable[CheckFunction] = (),
    ) -> CheckReport:
        """Run the integrity checks on a run (or several) of this store.

        Parameters
        ----------
        run : str or sequence of str, default "latest"
            A run id, a unique prefix, ``"latest"``, ``"all"``, or a list of them.
        expected_steps : sequence of str, optional
            The step names, in order, every checked run must have.
        extra : iterable of callables, optional
            One-off custom checks ``(store, run_ids) -> violations``.

        Returns
        -------
        CheckReport
            ``.ok``, ``.violations`` (DataFrame), ``.summary()``, ``.raise_if_failed()``.

        Raises
        ------
        RunNotFound
            ``run`` matches no run, or several.

        Examples
        --------
        >>> import lineage_kit as lk
        >>> with lk.connect("lineage.db") as store:  # doctest: +SKIP
        ...     store.check().raise_if_failed()
        """
        from ..checks import check

        return check(self, run, expected_steps=expected_steps, extra=extra)


def connect(path: str | os.PathLike[str]) -> LineageStore:
    """Open an existing lineage store for reading.

    Parameters
    ----------
    path : str or PathLike
        A SQLite file written by a lineage_kit pipeline.

    Returns
    -------
    LineageStore
        Also a context manager that closes the connection.

    Raises
    ------
    StoreNotFound
        Nothing exists at ``path``; nothing is created.
    NotALineageStore
        The file is not a lineage store; it is left unchanged.
    """
    return LineageStore(path, create=False)
