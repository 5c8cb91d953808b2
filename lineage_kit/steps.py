"""The built-in steps of the default pipeline: ingest -> normalize -> publish.

Steps only transform values; they know nothing about storage. The pipeline records
what each did.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from .errors import Reject
from .model import Step, step


def _identity(record: dict[str, Any]) -> dict[str, Any]:
    return record


# ``identity=True`` tells the pipeline the step returns its input object unchanged,
# so the JSON and hash computed for the previous entry are reused, not recomputed.
ingest: Step = replace(
    step(
        "ingest",
        source="input_file",
        destination="staging",
        description="store the record exactly as received",
    )(_identity),
    identity=True,
    pure=True,
)


@step(
    "normalize",
    source="staging",
    destination="normalized",
    description="lowercase and strip field names",
)
def normalize(record: dict[str, Any]) -> dict[str, Any]:
    """Lowercase and strip the record's top-level field names.

    Raises
    ------
    Reject
        ``field_collision`` when two fields become one name (``" Amount "`` and
        ``"amount"``): the record is rejected rather than one value silently lost.

    Examples
    --------
    >>> normalize({" Amount ": 5, "Customer Name": "Ada"})
    {'amount': 5, 'customer name': 'Ada'}
    """
    out: dict[str, Any] = {}
    for field, value in record.items():
        name = str(field).strip().lower()
        if name in out:
            raise Reject(
                "field_collision",
                f"fields collide after normalization: {name!r}",
            )
        out[name] = value
    return out


# normalize builds a new dict and never changes the record it is given.
normalize = replace(normalize, pure=True)

# No fixed source: publish reads from whatever step comes before it.
publish: Step = replace(
    step(
        "publish",
        destination="output",
        description="deliver the final record",
    )(_identity),
    identity=True,
    pure=True,
)

#: The default pipeline's steps, in order.
DEFAULT_STEPS: tuple[Step, ...] = (ingest, normalize, publish)

__all__ = ["DEFAULT_STEPS", "ingest", "normalize", "publish"]
