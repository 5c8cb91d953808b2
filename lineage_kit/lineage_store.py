"""The user's lineage store: :class:`LineageStore` and :func:`connect`.

A facade over the storage layer (:mod:`lineage_kit.store`, reached through one
:class:`~lineage_kit.store.backend.Backend`) and the analysis modules
(:mod:`lineage_kit.frames`, :mod:`lineage_kit.graph`, :mod:`lineage_kit.checks`,
:mod:`lineage_kit.summary`), which it calls; none of them imports it back. Those
that need pandas or networkx are imported inside the methods, so ``import
lineage_kit`` (and the CLI's start-up) stays free of them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import summary
from .errors import StoreClosed
from .store import Backend, open_backend

if TYPE_CHECKING:
    from collections.abc import Sequence

    import networkx as nx
    import pandas as pd

    from .checks import CheckFunction, CheckReport
    from .summary import RunSummary

__all__ = ["LineageStore", "connect"]


class LineageStore:
    """A lineage store: a SQLite file written by lineage_kit pipelines.

    Parameters
    ----------
    path : str or PathLike
        The SQLite file.
    create : bool, default False
        Create the store if the file is missing (pipelines do; readers do not).
    read_only : bool, optional
        Open with SQLite ``mode=ro`` so nothing can be written; the default is
        ``not create``. A store at an older schema version is migrated first.

    Raises
    ------
    StoreNotFound
        No file at ``path`` and ``create`` is false.
    NotALineageStore
        The file is not a lineage store; it was left byte-for-byte unchanged.
    SchemaVersionError
        The store comes from a newer lineage_kit, or (read-only) from an older one
        and cannot be written to migrate it; it was left unchanged.
    LineageKitError
        A read-only open is impossible: the ``-shm`` cannot be created next to the
        store, and someone may still write it (or a ``-wal`` is left).

    Examples
    --------
    >>> import lineage_kit as lk
    >>> with lk.connect("lineage.db") as store:  # doctest: +SKIP
    ...     store.runs()
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        create: bool = False,
        read_only: bool | None = None,
    ) -> None:
        self.path = Path(path)
        read_only = not create if read_only is None else read_only
        self._backend: Backend = open_backend(self.path, create=create, read_only=read_only)

    # ------------------------------------------------------------------ basics

    @property
    def backend(self) -> Backend:
        """The storage backend (:class:`lineage_kit.store.Backend`) this store reads.

        Raises
        ------
        StoreClosed
            The store was closed.
        """
        if self._backend.closed:
            raise StoreClosed(self._backend.location)
        return self._backend

    def close(self) -> None:
        """Close the connection; the store object cannot be used afterwards."""
        self._backend.close()

    def __enter__(self) -> LineageStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._backend.closed else "open"
        return f"<LineageStore {str(self.path)!r} ({state})>"

    def _repr_html_(self) -> str:
        if self._backend.closed:
            from html import escape

            return f"<p>lineage store {escape(str(self.path))} (closed)</p>"
        return summary.store_html(str(self.path), self.schema_version, self.run_rows())

    @property
    def schema_version(self) -> int:
        """The store's schema version (``PRAGMA user_version``)."""
        return self.backend.schema_version()

    # -------------------------------------------------------------------- runs

    def run_rows(self) -> list[dict[str, Any]]:
        """Every run as a dict, newest first.

        A run still marked ``running`` whose writing process is gone (it was killed
        or crashed) is reported with status ``interrupted``. The counts of a run that
        is ``running`` or ``interrupted`` (stored only when a run finishes) are counted
        from its entries so far.

        Returns
        -------
        list of dict
            Keys :data:`RUN_COLUMNS`.

        Examples
        --------
        >>> [r["status"] for r in store.run_rows()]  # doctest: +SKIP
        ['completed']
        """
        return self.backend.run_rows()

    def resolve_run(self, run: str | None = "latest") -> str:
        """Turn ``"latest"``, a full run id or a unique prefix into one run id.

        Run ids are lowercase UUIDs, so a prefix matches case-insensitively.

        Returns
        -------
        str
            The full run id.

        Raises
        ------
        RunNotFound
            The store has no runs, nothing (or more than one run) matches, or ``run``
            is ``"all"`` (which selects every run, where one is needed).

        Examples
        --------
        >>> store.resolve_run("latest")  # doctest: +SKIP
        '3f2b9c1e-...'
        """
        return self.backend.resolve_run(run)

    def resolve_runs(self, run: str | Sequence[str] | None = "latest") -> list[str]:
        """Like :meth:`resolve_run`, for several runs at once.

        ``"all"`` gives every run id, oldest first (none for an empty store); a
        list of ids, prefixes or ``"latest"`` gives each resolved once, in order.

        Returns
        -------
        list of str
            Full run ids.

        Raises
        ------
        RunNotFound
            A run id, prefix or ``"latest"`` matches nothing.

        Examples
        --------
        >>> store.resolve_runs("all")  # doctest: +SKIP
        ['0c1d...', '3f2b...']
        """
        return self.backend.resolve_runs(run)

    def trace_records(
        self, key: str | int | float, run: str | Sequence[str] | None = "latest"
    ) -> list[dict[str, Any]]:
        """:meth:`trace` without pandas: the chain as a list of dicts (see
        :meth:`lineage_kit.store.Backend.trace_records`)."""
        return self.backend.trace_records(key, run)

    def step_position(
        self, run_id: str, step: str | int, steps: list[tuple] | None = None
    ) -> int | None:
        """The position of a step (given by name or position) in a run, or None."""
        return self.backend.step_position(run_id, step, steps)

    def runs(self) -> pd.DataFrame:
        """Every run, newest first, as a typed DataFrame (see :func:`frames.runs_frame`)."""
        from .frames import runs_frame

        return runs_frame(self.backend)

    # ----------------------------------------------------------------- explore

    def steps(self, run: str | Sequence[str] | None = "latest") -> pd.DataFrame:
        """The steps of a run with entry counts by status, in pipeline order.

        Parameters
        ----------
        run : str or list of str, default "latest"
            A run id, a unique prefix, ``"latest"``, ``"all"``, or a list of ids,
            prefixes or ``"latest"``.

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
        from .frames import steps_frame

        return steps_frame(self.backend, run)

    def lineage(
        self,
        run: str | Sequence[str] | None = "latest",
        key: str | int | float | None = None,
        step: str | int | None = None,
    ) -> pd.DataFrame:
        """The lineage entries of a run, one row per entry.

        Parameters
        ----------
        run : str or list of str, default "latest"
            A run id, a unique prefix, ``"latest"``, ``"all"``, or a list of ids,
            prefixes or ``"latest"``.
        key : str, int or float, optional
            Only this record key's entries (a number is turned into key text,
            ``110`` -> ``"110"``).
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
            ``step`` is not a step of the chosen run(s), or ``key`` is a number
            no source accepts as a key (NaN, infinite).
        TypeError
            ``key`` is neither text nor a number.

        Examples
        --------
        >>> store.lineage(key="order-101")[["step", "status"]]  # doctest: +SKIP
        """
        from .frames import lineage_frame

        return lineage_frame(self.backend, run, key=key, step=step)

    def graph(
        self, run: str | Sequence[str] | None = "latest", key: str | int | float | None = None
    ) -> nx.DiGraph:
        """The lineage graph of a run, or of everything connected to one key.

        Parameters
        ----------
        run : str or list of str, default "latest"
            A run id, a unique prefix, ``"latest"``, ``"all"``, or a list of ids,
            prefixes or ``"latest"``.
        key : str, int or float, optional
            Only the key's entries and all their ancestors and descendants (so a
            merged record shows its parents with other keys, a split record its
            children); nodes then also carry the stored ``value``. A number is
            turned into key text.

        Returns
        -------
        networkx.DiGraph
            See :func:`lineage_kit.frames.lineage_graph`: nodes are entry ids with
            attributes ``key, step, position, status, reason, error, run,
            created_at, value_hash`` (and ``value``); edges run parent -> child.
            ``G.graph`` holds ``run_id``, ``run_ids`` and ``steps``. Empty for
            ``"all"`` on a store without runs.

        Raises
        ------
        RunNotFound
            ``run`` matches no run.
        KeyNotFound
            ``key`` has no entries in the chosen run(s).
        TypeError, ValueError
            ``key`` is not a record key.

        Examples
        --------
        >>> G = store.graph(key="order-101")  # doctest: +SKIP
        >>> [G.nodes[n]["step"] for n in nx.topological_sort(G)]  # doctest: +SKIP
        ['ingest', 'normalize', 'publish']
        """
        from .frames import lineage_graph

        return lineage_graph(self.backend, run, key)

    def step_graph(self, run: str | Sequence[str] | None = "latest") -> nx.DiGraph:
        """The stage summary graph: stages as nodes, one edge per step with counts.

        Parameters
        ----------
        run : str or list of str, default "latest"
            A run id, a unique prefix, ``"latest"``, ``"all"``, or a list of ids,
            prefixes or ``"latest"`` (several runs: counts added up).

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
        from .graph import step_graph

        return step_graph(self.steps(run))

    # ------------------------------------------------------------ records, walks

    def records(
        self,
        run: str | Sequence[str] | None = "latest",
        key: str | int | float | None = None,
        step: str | int | None = None,
        expand: bool = False,
    ) -> pd.DataFrame:
        """The stored value of every entry (what each record looked like after each step).

        Parameters
        ----------
        run : str or list of str, default "latest"
            A run id, a unique prefix, ``"latest"``, ``"all"``, or a list of ids,
            prefixes or ``"latest"``.
        key : str, int or float, optional
            Only this record key (a number is turned into key text).
        step : str or int, optional
            Only this step (name or position).
        expand : bool, default False
            Flatten the values into ``value.<field>`` columns.

        Returns
        -------
        pandas.DataFrame
            See :func:`lineage_kit.frames.records_frame`.

        Raises
        ------
        RunNotFound
            ``run`` matches no run.
        ValueError
            ``step`` is not a step of the chosen run(s), or ``key`` is a number
            no source accepts as a key.
        TypeError
            ``key`` is neither text nor a number.

        Examples
        --------
        >>> store.records(key="order-101", expand=True)  # doctest: +SKIP
        """
        from .frames import records_frame

        return records_frame(self.backend, run, key=key, step=step, expand=expand)

    def trace(
        self, key: str | int | float, run: str | Sequence[str] | None = "latest"
    ) -> pd.DataFrame:
        """One record's chain in step order, with step metadata, status, error, hash, time.

        Parameters
        ----------
        key : str, int or float
            A record key (a number is turned into key text, ``110`` -> ``"110"``).
        run : str or list of str, default "latest"
            A run id, a unique prefix, ``"latest"``, ``"all"``, or a list of ids,
            prefixes or ``"latest"``.

        Returns
        -------
        pandas.DataFrame
            See :func:`lineage_kit.frames.trace_frame`.

        Raises
        ------
        KeyNotFound
            The key has no entries in the chosen run(s).
        RunNotFound
            ``run`` matches no run.
        TypeError, ValueError
            ``key`` is not a record key.

        Examples
        --------
        >>> store.trace("order-101")[["step", "status", "value_hash"]]  # doctest: +SKIP
        """
        from .frames import trace_frame

        return trace_frame(self.backend, key, run)

    def upstream(self, entry_id: int, depth: int | None = None) -> pd.DataFrame:
        """Everything an entry came from, with a ``depth`` column (0 is the entry).

        See :func:`lineage_kit.frames.walk_frame`.

        Raises
        ------
        EntryNotFound
            No entry has this id.
        InvalidEntryId
            ``entry_id`` is not an integer: an int, a numpy integer or its decimal
            text (a bool or a float is refused).
        """
        from .frames import walk_frame

        return walk_frame(self.backend, entry_id, depth, "up")

    def downstream(self, entry_id: int, depth: int | None = None) -> pd.DataFrame:
        """Everything derived from an entry, with a ``depth`` column (0 is the entry).

        See :func:`lineage_kit.frames.walk_frame`.

        Raises
        ------
        EntryNotFound
            No entry has this id.
        InvalidEntryId
            ``entry_id`` is not an integer: an int, a numpy integer or its decimal
            text (a bool or a float is refused).
        """
        from .frames import walk_frame

        return walk_frame(self.backend, entry_id, depth, "down")

    def source_of(
        self,
        key: str | int | float | None = None,
        run: str | None = "latest",
        *,
        entry_id: int | None = None,
    ) -> pd.DataFrame:
        """The original input value(s), as they arrived, behind a record key or entry.

        Parameters
        ----------
        key : str, int or float, optional
            A record key (a number is a key too: ``110`` -> ``"110"``).
        run : str, default "latest"
            A run id, a unique prefix or ``"latest"``; ignored with ``entry_id``.
        entry_id : int, optional
            A lineage entry id instead of a key. Give exactly one of the two.

        Returns
        -------
        pandas.DataFrame
            See :func:`lineage_kit.frames.source_frame`.

        Raises
        ------
        TypeError
            Neither or both of ``key`` and ``entry_id`` given, or a wrong type.
        ValueError
            ``key`` is a number no source accepts as a key.
        KeyNotFound, EntryNotFound, RunNotFound
            Nothing matches ``key``, ``entry_id`` or ``run``.

        Examples
        --------
        >>> store.source_of("order-101")["value"][0]  # doctest: +SKIP
        >>> store.source_of(entry_id=42)  # doctest: +SKIP
        """
        from .frames import source_frame

        return source_frame(self.backend, key, run, entry_id=entry_id)

    def changes(
        self, key: str | int | float, run: str | Sequence[str] | None = "latest"
    ) -> pd.DataFrame:
        """Per step, the fields it added, removed or changed in one record.

        Parameters
        ----------
        key : str, int or float
            A record key (a number is turned into key text).
        run : str or list of str, default "latest"
            A run id, a unique prefix, ``"latest"``, ``"all"``, or a list of ids,
            prefixes or ``"latest"``.

        Returns
        -------
        pandas.DataFrame
            See :func:`lineage_kit.frames.changes_frame`.

        Raises
        ------
        KeyNotFound
            The key has no entries in the chosen run(s).
        RunNotFound
            ``run`` matches no run.
        TypeError, ValueError
            ``key`` is not a record key.

        Examples
        --------
        >>> store.changes("order-101")[["step", "field", "change"]]  # doctest: +SKIP
        """
        from .frames import changes_frame

        return changes_frame(self.backend, key, run)

    def compare_runs(self, run_a: str, run_b: str) -> pd.DataFrame:
        """Keys only in A, only in B, on a different path, or with a different final value.

        Parameters
        ----------
        run_a, run_b : str
            Each a run id, a unique prefix or ``"latest"`` (not ``"all"``).

        Returns
        -------
        pandas.DataFrame
            One row per key that differs; see :func:`lineage_kit.frames.compare_frame`.

        Raises
        ------
        RunNotFound
            Either run matches nothing (or more than one), or is ``"all"``.

        Examples
        --------
        >>> store.compare_runs("3f2a", "latest")  # doctest: +SKIP
        """
        from .frames import compare_frame

        return compare_frame(self.backend, self.resolve_run(run_a), self.resolve_run(run_b))

    def summary(self, run: str | None = "latest") -> RunSummary:
        """A run at a glance (status, counts, per-step outcomes); HTML in notebooks.

        Raises
        ------
        RunNotFound
            ``run`` matches no run, or is ``"all"``.
        """
        return summary.run_summary(self.backend, run)

    # ----------------------------------------------------------------- exports

    def openlineage_events(
        self, run: str | Sequence[str] | None = "latest", *, namespace: str | None = None
    ) -> list[dict[str, Any]]:
        """The run's OpenLineage events.

        See :func:`lineage_kit.export.openlineage.openlineage_events`.
        """
        from .export.openlineage import openlineage_events

        return openlineage_events(self.backend, run, namespace=namespace)

    def to_prov(
        self,
        run: str | Sequence[str] | None = "latest",
        key: str | int | float | None = None,
        values: bool = False,
    ) -> Any:
        """The run as a W3C PROV document; see :func:`lineage_kit.export.prov.to_prov`."""
        from .export.prov import to_prov

        return to_prov(self.backend, run, key=key, values=values)

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
        from .checks import check

        return check(self.backend, run, expected_steps=expected_steps, extra=extra, store=self)


def connect(path: str | os.PathLike[str]) -> LineageStore:
    """Open an existing lineage store for reading.

    The connection is read-only (SQLite ``mode=ro``): the store can be on read-only
    media or owned by someone else, and analysis can never change it. Opening an
    older store migrates it to the current schema first, which needs write access
    once.

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
    SchemaVersionError
        The store is from a newer lineage_kit, or from an older one and cannot be
        written to migrate it; it is left unchanged.
    LineageKitError
        The store cannot be opened read-only: the ``-shm`` cannot be created next to
        the store, and someone may still write it (or a ``-wal`` is left). On
        read-only media, with no ``-wal``, the store is read as an immutable file.

    Examples
    --------
    >>> import lineage_kit as lk
    >>> with lk.connect("lineage.db") as store:  # doctest: +SKIP
    ...     store.runs()
    """
    return LineageStore(path, create=False, read_only=True)
