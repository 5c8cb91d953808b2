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
from . import queries
from .connection import identify, open_connection
from .schema import APPLICATION_ID, SCHEMA_VERSION
from .writer import transaction

if TYPE_CHECKING:
    import networkx as nx
    import pandas as pd

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

    def resolve_runs(self, run: str | None = "latest") -> list[str]:
        """Like :meth:`resolve_run`, but ``"all"`` gives every run id (oldest first).

        Raises
        ------
        RunNotFound
            Nothing matches, or ``"all"`` and the store has no runs.
        """
        if run == "all":
            ids = queries.all_run_ids(self.con)
            if not ids:
                raise RunNotFound(f"the store {self.path} has no runs yet")
            return ids
        return [self.resolve_run(run)]

    def step_position(
        self, run_id: str, step: str | int, steps: list[tuple] | None = None
    ) -> int | None:
        """The position of a step (given by name or position) in a run, or None."""
        steps = steps if steps is not None else queries.step_meta_rows(self.con, run_id)
        for row in steps:
            if step == row[2] or (isinstance(step, int) and step == row[1]):
                return row[1]
        return None

    def runs(self) -> pd.DataFrame:
        """Every run, newest first, as a typed DataFrame (see :func:`frames.runs_frame`)."""
        from ..frames import runs_frame

        return runs_frame(self)

    # ----------------------------------------------------------------- explore

    def steps(self, run: str | None = "latest") -> pd.DataFrame:
        """The steps of a run with entry counts by status, in pipeline order.

        Parameters
        ----------
        run : str, default "latest"
            A run id, a unique prefix, ``"latest"`` or ``"all"``.

        Returns
        -------
        pandas.DataFrame
            See :func:`lineage_kit.frames.steps_frame`.

        Raises
        ------
        RunNotFound
            ``run`` matches no run.

        Examples
        --------
        >>> store.steps()[["name", "n_ok", "n_rejected"]]  # doctest: +SKIP
        """
        from ..frames import steps_frame

        return steps_frame(self, run)

    def lineage(
        self,
        run: str | None = "latest",
        key: str | None = None,
        step: str | int | None = None,
    ) -> pd.DataFrame:
        """The lineage entries of a run, one row per entry.

        Parameters
        ----------
        run : str, default "latest"
            A run id, a unique prefix, ``"latest"`` or ``"all"``.
        key : str, optional
            Only this record key's entries.
        step : str or int, optional
            Only this step's entries (name or position).

        Returns
        -------
        pandas.DataFrame
            See :func:`lineage_kit.frames.lineage_frame`.

        Raises
        ------
        RunNotFound
            ``run`` matches no run.
        ValueError
            ``step`` is not a step of the chosen run(s).

        Examples
        --------
        >>> store.lineage(key="order-101")[["step", "status"]]  # doctest: +SKIP
        """
        from ..frames import lineage_frame

        return lineage_frame(self, run, key=key, step=step)

    def graph(self, run: str | None = "latest", key: str | None = None) -> nx.DiGraph:
        """The lineage graph of a run, or of everything connected to one key.

        Parameters
        ----------
        run : str, default "latest"
            A run id, a unique prefix, ``"latest"`` or ``"all"``.
        key : str, optional
            Only the key's entries and all their ancestors and descendants (so a
            merged record shows its parents with other keys, a split record its
            children); nodes then also carry the stored ``value``.

        Returns
        -------
        networkx.DiGraph
            Nodes are entry ids with attributes ``key, step, position, status,
            reason, error, run, created_at, value_hash`` (and ``value``); edges run
            parent -> child. ``G.graph`` holds ``run_id`` (``None`` for several
            runs), ``run_ids`` and ``steps`` (dicts of ``position, name, kind,
            source, destination, description``; of the newest run chosen).

        Raises
        ------
        RunNotFound
            ``run`` matches no run.
        KeyNotFound
            ``key`` has no entries in the chosen run(s).

        Examples
        --------
        >>> G = store.graph(key="order-101")  # doctest: +SKIP
        >>> [G.nodes[n]["step"] for n in nx.topological_sort(G)]  # doctest: +SKIP
        ['ingest', 'normalize', 'publish']
        """
        from ..errors import KeyNotFound
        from ..graph import STEP_FIELDS, entry_graph

        run_ids = self.resolve_runs(run)
        steps = {run_id: queries.step_meta_rows(self.con, run_id) for run_id in run_ids}
        entries: list[tuple] = []
        edges: list[tuple[int, int]] = []
        for run_id in run_ids:
            if key is None:
                entries.extend(queries.entry_rows(self.con, run_id))
                edges.extend(queries.edge_rows(self.con, run_id))
            else:
                found = queries.connected_entry_rows(self.con, run_id, key)
                entries.extend(found)
                edges.extend(queries.links_among(self.con, [r[0] for r in found]))
        if key is not None and not entries:
            where = "any run" if run == "all" else f"run {run_ids[0]}"
            raise KeyNotFound(f"key {key!r} has no lineage entries in {where}")
        newest = run_ids[-1] if run == "all" else run_ids[0]
        return entry_graph(
            entries,
            edges,
            step_names={run_id: [s[2] for s in rows] for run_id, rows in steps.items()},
            with_values=key is not None,
            graph_attrs={
                "run_id": run_ids[0] if len(run_ids) == 1 else None,
                "run_ids": run_ids,
                "steps": [dict(zip(STEP_FIELDS, s[1:7], strict=True)) for s in steps[newest]],
            },
        )

    def step_graph(self, run: str | None = "latest") -> nx.DiGraph:
        """The stage summary graph: stages as nodes, one edge per step with counts.

        Parameters
        ----------
        run : str, default "latest"
            A run id, a unique prefix, ``"latest"`` or ``"all"`` (counts added up).

        Returns
        -------
        networkx.DiGraph
            See :func:`lineage_kit.graph.step_graph`.

        Raises
        ------
        RunNotFound
            ``run`` matches no run.

        Examples
        --------
        >>> G = store.step_graph()  # doctest: +SKIP
        >>> list(G.edges)  # doctest: +SKIP
        [('input_file', 'staging'), ('staging', 'normalized'), ('normalized', 'output')]
        """
        from ..graph import step_graph

        return step_graph(self.steps(run))


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
