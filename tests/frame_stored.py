"""What a run stored, for comparing frame steps with record steps (tests only)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lineage_kit as lk


def stored_rows(db: Path) -> list[tuple[Any, ...]]:
    """``(position, key, status, reason, error, hash, value)`` of every entry of the
    store, ordered by position and key."""
    with lk.connect(db) as store:
        return store.backend.con.execute(
            "SELECT position, record_key, status, reason, error, value_hash, value FROM lineage "
            "JOIN records USING (entry_id) ORDER BY position, record_key"
        ).fetchall()
