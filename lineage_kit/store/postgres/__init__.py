"""The PostgreSQL implementation of the storage seam: one shared store for a team.

:class:`~lineage_kit.store.postgres.backend.PostgresBackend` (extra
``lineage_kit[postgres]``: psycopg 3) keeps the same contract as the SQLite
backend. The modules: :mod:`.url` (store URLs, shown without passwords; no
psycopg), :mod:`.schema` (the v4 layout's DDL), :mod:`.connection` (connecting,
identity, creation under an advisory lock), :mod:`.text` (NUL and lone surrogates
escaped losslessly), :mod:`.writer` (COPY writes, liveness), :mod:`.queries` and
:mod:`.integrity` (reads and the checks' SQL). Importing this package does not
import psycopg: only opening a ``postgresql://`` store does.
"""

from __future__ import annotations

from .url import is_url, redact

__all__ = ["is_url", "redact"]
