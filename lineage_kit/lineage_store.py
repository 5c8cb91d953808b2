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
from .store import Backend, is_url, open_backend, redact

if TYPE_CHECKING:
    from collections.abc import Sequence

    import networkx as nx
    import pandas as pd

    from .checks import CheckFunction, CheckReport
    from .summary import RunSummary

__all__ = ["LineageStore", "connect"]


class LineageStore:
    """A lineage store: a SQLite file or a PostgreSQL schema written by lineage_kit pipelines.

    Parameters
    ----------
    path : str or PathLike
        The SQLite file, or a ``postgresql://`` URL (see
        :class:`~lineage_kit.store.postgres.backend.PostgresBackend`).
    create : bool, default False
        Create the store if the file is missing (pipelines do; readers do not).
    read_only : bool, optional
        Open with SQLite ``mode=ro`` so nothing can be written; the default is
        ``not create``. A store at an older schema version is migrated first.

    Notes
    -----
    **Runs and keys.** Every ``run`` parameter takes a run id, a unique prefix of one
    (any case), ``"latest"`` (the default), ``"all"`` (every run, oldest first) or a
    list of ids, prefixes and ``"latest"``; a method about one run refuses ``"all"``
    with :class:`~lineage_kit.RunNotFound`, as it does a prefix that matches nothing
    or several runs. Record keys are text; a number is a key too, turned into text as
    the sources do (``110`` -> ``"110"``, see :func:`lineage_kit.base.key_text`), and
    anything else (a bool, None, NaN) raises TypeError or ValueError.

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
    >>> with lk.LineageStore("lineage.db") as store:
    ...     store.runs()["status"].tolist()
    ['completed']
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        create: bool = False,
        read_only: bool | None = None,
    ) -> None:
        #: A path for a SQLite store; for a PostgreSQL store its URL without password.
        self.path: Path | str = redact(path) if is_url(path) else Path(path)
        read_only = not create if read_only is None else read_only
        where = path if is_url(path) else self.path
        self._backend: Backend = open_backend(where, create=create, read_only=read_only)

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
        >>> [r["status"] for r in store.run_rows()]
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
        >>> run_id = store.resolve_run("latest")
        >>> store.resolve_run(run_id[:8]) == run_id
        True
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
        >>> store.resolve_runs("all") == [store.resolve_run()]
        True
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
        """Every run, newest first, as a typed DataFrame.

        Returns
        -------
        pandas.DataFrame
            One row per run: ``run_id``, ``pipeline``, ``started_at`` and ``finished_at``
            (UTC), ``status`` (categorical; a run whose writer died shows
            ``interrupted``), ``input_path`` and ``input_sha256`` (missing for a run
            over in-memory records), counts ``n_input``, ``n_published``,
            ``n_rejected``, ``n_failed`` (int64), ``parameters`` (a dict, as in
            ``lineage-kit runs --json``),
            ``package_version``, ``error`` (missing unless the run failed),
            ``writer_host``, ``writer_pid`` (Int64), ``writer_started`` and
            ``duration_s`` (float64; NaN while a run is unfinished). A missing text is
            None in a column where every run lacks it, NaN otherwise.

        Examples
        --------
        >>> store.runs()[["pipeline", "status", "n_published"]]
          pipeline     status  n_published
        0  default  completed           30
        """
        from .frames import runs_frame

        return runs_frame(self.backend)

    # ----------------------------------------------------------------- explore

    def steps(self, run: str | Sequence[str] | None = "latest") -> pd.DataFrame:
        """The steps of a run with entry counts by status, in pipeline order.

        Parameters
        ----------
        run : str or list of str, default "latest"
            Which run(s); see *Runs and keys* in :class:`LineageStore`.

        Returns
        -------
        pandas.DataFrame
            Columns ``run_id`` (categorical), ``position`` (int64), ``name``
            (categorical in pipeline order), ``kind`` (categorical map/merge/split),
            ``source``, ``destination``, ``description`` (str; NaN where the step has
            none), ``started_at`` and
            ``finished_at`` (UTC; NaT when the step never ran), ``busy_seconds``
            (float64), ``n_ok``, ``n_rejected``, ``n_failed`` (int64: the step's entries
            by status). With ``run="all"``, runs oldest first (no rows for a store
            without runs).

        Raises
        ------
        RunNotFound
            ``run`` matches no run (see *Runs and keys*).

        Examples
        --------
        >>> store.steps()[["name", "n_ok", "n_rejected"]]
                name  n_ok  n_rejected
        0     ingest    30           0
        1  normalize    30           0
        2    publish    30           0
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
            Which run(s); see *Runs and keys* in :class:`LineageStore`.
        key : str, int or float, optional
            Only this record key's entries (a number is turned into key text,
            ``110`` -> ``"110"``).
        step : str or int, optional
            Only this step's entries (name or position).

        Returns
        -------
        pandas.DataFrame
            Columns ``entry_id`` (int64), ``run_id`` (categorical), ``position``
            (int64), ``step`` (categorical in pipeline order), ``key`` (str; missing,
            i.e. NaN, for records rejected before they had a key: test with
            ``frame["key"].isna()``), ``status`` (categorical ok/rejected/failed),
            ``reason`` and ``error`` (str; NaN where there is none), ``created_at``
            (UTC), ``value_hash`` (str), ``parent_id`` (Int64: the parent entry, the
            smallest one for a merged entry, ``<NA>`` for a first-step entry) and
            ``n_parents`` (int64; more than 1 for a merged entry). With ``run="all"``
            on a store without runs: no rows, same columns and dtypes.

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
        >>> store.lineage(key="order-101")[["entry_id", "step", "status", "parent_id"]]
           entry_id       step status  parent_id
        0         1     ingest     ok       <NA>
        1        31  normalize     ok          1
        2        61    publish     ok         31
        """
        from .frames import lineage_frame

        return lineage_frame(self.backend, run, key=key, step=step)

    def graph(
        self, run: str | Sequence[str] | None = "latest", key: str | int | float | None = None
    ) -> nx.DiGraph:
        """The lineage graph of a run, or of everything connected to one key.

        Loads the entries and links (decoded as for :func:`lineage_frame`, without
        building a DataFrame) and hands them to the pure builder
        :func:`lineage_kit.graph.entry_graph`.

        Parameters
        ----------
        run : str or list of str, default "latest"
            Which run(s); see *Runs and keys* in :class:`LineageStore`.
        key : str, int or float, optional
            Only the key's entries and all their ancestors and descendants (so a
            merged record shows its parents with other keys, a split record its
            children); nodes then also carry the stored ``value``. A number is
            turned into key text.

        Returns
        -------
        networkx.DiGraph
            Nodes are entry ids with attributes ``key, step, position, status,
            reason, error, run, created_at, value_hash`` (and ``value``); missing
            texts (``key`` of a keyless record, ``reason``, ``error``) are None. Edges
            run parent -> child. ``G.graph`` holds ``run_id`` (``None`` for several
            runs or none), ``run_ids`` and ``steps`` (dicts of ``position, name, kind,
            source, destination, description``: of the newest run with ``"all"``,
            otherwise of the first run given). ``run="all"`` on a store without runs
            gives an empty graph (``steps`` empty).

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
        >>> import networkx as nx
        >>> G = store.graph(key="order-101")
        >>> [G.nodes[n]["step"] for n in nx.topological_sort(G)]
        ['ingest', 'normalize', 'publish']
        """
        from .frames import lineage_graph

        return lineage_graph(self.backend, run, key)

    def step_graph(self, run: str | Sequence[str] | None = "latest") -> nx.DiGraph:
        """The stage summary graph: stages as nodes, one edge per step with counts.

        Parameters
        ----------
        run : str or list of str, default "latest"
            Which run(s) (several: counts added up); see :class:`LineageStore`.

        Returns
        -------
        networkx.DiGraph
            See :func:`lineage_kit.graph.step_graph`.

        Raises
        ------
        RunNotFound
            No run matches ``run``.

        Examples
        --------
        >>> G = store.step_graph()
        >>> list(G.edges)
        [('input_file', 'staging'), ('staging', 'normalized'), ('normalized', 'output')]
        >>> G.edges["staging", "normalized"]["ok"]
        30
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
        run, key, step
            Which entries, as for :meth:`lineage`.
        expand : bool, default False
            Flatten the values into ``value.<field>`` columns.

        Returns
        -------
        pandas.DataFrame
            ``entry_id``, ``run_id``, ``step``, ``position``, ``key``, ``status``
            (typed as in :func:`lineage_frame`), then ``value`` (the parsed JSON value:
            a dict, or a list for a failed merge) or the expanded columns. No rows
            (and no expanded columns) when nothing is selected.

        Raises
        ------
        RunNotFound, ValueError, TypeError
            As for :meth:`lineage`.

        Examples
        --------
        >>> store.records(key="order-101", step="publish")["value"][0]["amount"]
        19.99
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
            Which run(s); see *Runs and keys* in :class:`LineageStore`.

        Returns
        -------
        pandas.DataFrame
            One row per entry in step order (position, then entry id): ``entry_id``,
            ``run_id``, ``position``, ``step`` (categorical), ``kind``, ``source``,
            ``destination``, ``description``, ``key``, ``relation`` (``self`` for the
            key's own entries; ``upstream``: entries of other keys it came from, e.g.
            before a split; ``downstream``: entries it led to, e.g. a merge),
            ``status``, ``reason``, ``error``, ``value_hash``, ``created_at`` (UTC) and
            ``parent_ids`` (a list of entry ids). Text columns are str, NaN where
            missing.

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
        >>> store.trace("order-101")[["step", "relation", "status"]]
                step relation status
        0     ingest     self     ok
        1  normalize     self     ok
        2    publish     self     ok
        """
        from .frames import trace_frame

        return trace_frame(self.backend, key, run)

    def upstream(self, entry_id: int, depth: int | None = None) -> pd.DataFrame:
        """Everything an entry came from, with a ``depth`` column (0 is the entry).

        Parameters
        ----------
        entry_id : int
            A lineage entry id (entry ids are unique across runs).
        depth : int, optional
            How many links to follow; None follows them to the end.

        Returns
        -------
        pandas.DataFrame
            ``entry_id``, ``depth`` (0 for the entry itself, 1 for its parents, ...),
            then the columns of :meth:`trace` without ``relation``; ordered by depth,
            then entry id. An entry reachable along several paths (fan-in, fan-out)
            appears once, at its smallest depth; so does each entry of a cycle in a
            tampered store (the walk ends; :meth:`check` reports the cycle).

        Raises
        ------
        EntryNotFound
            No entry has this id.
        InvalidEntryId
            ``entry_id`` is not an integer: an int, a numpy integer or its decimal
            text (a bool or a float is refused).
        ValueError
            ``depth`` is negative.

        Examples
        --------
        >>> store.upstream(61)[["entry_id", "depth", "step"]]
           entry_id  depth       step
        0        61      0    publish
        1        31      1  normalize
        2         1      2     ingest
        """
        from .frames import walk_frame

        return walk_frame(self.backend, entry_id, depth, "up")

    def downstream(self, entry_id: int, depth: int | None = None) -> pd.DataFrame:
        """Everything derived from an entry: :meth:`upstream` towards the children.

        Parameters, result and errors are those of :meth:`upstream` (``depth`` 1 is
        the entry's children).

        Examples
        --------
        >>> store.downstream(1, depth=1)["entry_id"].tolist()
        [1, 31]
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

        Give exactly one of ``key`` and ``entry_id``.

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
            One row per first-step ancestor (several after a merge), by entry id:
            ``entry_id`` (int64), ``run_id``, ``key`` (str; NaN for a record rejected
            before it had a key), ``status`` (categorical), ``reason`` (str; NaN where
            there is none), ``created_at`` (UTC), ``value_hash`` and ``value`` (the
            record as it arrived, parsed from JSON).

        Raises
        ------
        TypeError
            Neither or both of ``key`` and ``entry_id`` were given, or ``key`` is
            neither text nor a number.
        InvalidEntryId
            ``entry_id`` is not an integer (see :func:`lineage_kit.frames.entry_id_of`).
        ValueError
            ``key`` is a number no source accepts as a key (NaN, infinite).
        KeyNotFound
            The key has no entries in the run.
        EntryNotFound
            No entry has this id.
        RunNotFound
            ``run`` matches no run.

        Examples
        --------
        >>> store.source_of("order-101")["value"][0][" Amount "]
        19.99
        >>> store.source_of(entry_id=61)["entry_id"].tolist()
        [1]
        """
        from .frames import source_frame

        return source_frame(self.backend, key, run, entry_id=entry_id)

    def changes(
        self, key: str | int | float, run: str | Sequence[str] | None = "latest"
    ) -> pd.DataFrame:
        """Per step, the fields it added, removed or changed in one record.

        Each of the key's entries is compared with its parent entry (with each
        parent, for a merged entry); a first-step entry has no parent and shows
        nothing. Rejected and failed entries store the value they received, so they
        show no changes.

        Parameters
        ----------
        key : str, int or float
            A record key (a number is turned into key text).
        run : str or list of str, default "latest"
            Which run(s); see *Runs and keys* in :class:`LineageStore`.

        Returns
        -------
        pandas.DataFrame
            One row per changed field: ``run_id``, ``entry_id``, ``step``
            (categorical), ``position``, ``parent_id``, ``parent_key``, ``field``
            (dotted path into nested objects; ``"(value)"`` for a value that is not
            an object), ``change`` (categorical added/removed/changed), ``old``,
            ``new`` (object: the JSON values, None for an added or removed field); in
            step order. No rows when no step changed anything.

        Raises
        ------
        KeyNotFound, RunNotFound, TypeError, ValueError
            As :meth:`trace` does.

        Examples
        --------
        >>> store.changes("order-101").query("field == 'amount'")[["step", "change", "new"]]
                step change    new
        7  normalize  added  19.99
        """
        from .frames import changes_frame

        return changes_frame(self.backend, key, run)

    def compare_runs(self, run_a: str, run_b: str) -> pd.DataFrame:
        """Keys only in A, only in B, on a different path, or with a different final value.

        A key's *path* is its entries in order as ``step:status`` (for example
        ``ingest:ok > normalize:rejected``); its *final value* is the value hash of
        its last entry. Records rejected before they had a key cannot be matched
        across runs and are left out.

        Parameters
        ----------
        run_a, run_b : str
            Each a run id, a unique prefix or ``"latest"`` (not ``"all"``).

        Returns
        -------
        pandas.DataFrame
            One row per key that differs, sorted by ``difference`` then ``key``:
            ``key``, ``difference`` (categorical: ``only_in_a``, ``only_in_b``,
            ``different_path``, ``different_value``), ``path_a``, ``path_b``,
            ``status_a``, ``status_b`` (final statuses), ``hash_a``, ``hash_b``; all
            but ``difference`` str, NaN on the side where the key is absent.

        Raises
        ------
        RunNotFound
            Either run matches no run (or more than one).
        ValueError
            ``"all"`` was given.

        Examples
        --------
        >>> len(store.compare_runs("latest", "latest"))  # a run does not differ from itself
        0
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
            Which run(s); see *Runs and keys* in :class:`LineageStore`.
        expected_steps : sequence of str or str, optional
            The step names, in order, every checked run must have; one text is
            separated by commas (``"ingest,normalize,publish"``), as the CLI's.
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
        >>> report = store.check()
        >>> report.ok, report.n_errors
        (True, 0)
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
        A SQLite file written by a lineage_kit pipeline, or a ``postgresql://`` URL
        (``"postgresql://user@host/db"``; ``?schema=`` names the store's schema,
        default ``lineage_kit``): the session is then read-only.

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
    >>> with lk.connect("lineage.db") as store:
    ...     store.runs()[["status", "n_input", "n_published"]]
          status  n_input  n_published
    0  completed       30           30
    """
    return LineageStore(path, create=False, read_only=True)
