"""The built-in steps of the default pipeline: ingest -> normalize -> publish.

Steps only transform values; they know nothing about storage. The pipeline records
what each did.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from .errors import Reject
from .frame_steps import RENAMED
from .model import Step, step


def _identity(record: dict[str, Any]) -> dict[str, Any]:
    return record


def _passthrough(name: str, description: str, **stages: str) -> Step:
    """A step returning its record unchanged. ``identity=True`` tells the pipeline so:
    the JSON and hash computed for the previous entry are reused, not recomputed."""
    step_ = step(name, description=description, **stages)(_identity)
    return replace(step_, identity=True, pure=True)


ingest: Step = _passthrough(
    "ingest", "store the record exactly as received", source="input_file", destination="staging"
)

#: Where both forms of normalize read and write, and what they do.
_NORMALIZE = {
    "source": "staging",
    "destination": "normalized",
    "description": "lowercase and strip field names",
}


@step("normalize", **_NORMALIZE)
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
publish: Step = _passthrough("publish", "deliver the final record", destination="output")


@step("normalize", frame=True, **_NORMALIZE)
def normalize_frame(df: Any) -> Any:
    """:func:`normalize` as a frame step: the same values, one rename per chunk.

    A row holding values in two columns that become one name (``" Amount "`` and
    ``"amount"``) is rejected as ``field_collision``; where only one of them holds a
    value (a missing cell and a null are the same in a DataFrame), that value is kept.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({" Amount ": [5], "Customer Name": ["Ada"]}, index=["k1"])
    >>> normalize_frame(df).to_dict("index")
    {'k1': {'amount': 5, 'customer name': 'Ada'}}
    """
    names = [str(c).strip().lower() for c in df.columns]
    if len(set(names)) == len(names):
        out = df.set_axis(names, axis=1)
        out.attrs[RENAMED] = dict(zip(names, df.columns, strict=True))
        return out
    columns: dict[str, list[Any]] = {}
    for name, column in zip(names, df.columns, strict=True):
        columns.setdefault(name, []).append(column)
    import pandas as pd  # only reached inside a running frame step

    message = pd.Series(None, index=df.index, dtype=object)
    parts, renamed = {}, {}
    for name, group in columns.items():
        if len(group) == 1:
            parts[name], renamed[name] = df[group[0]], group[0]
            continue
        several = (df[group].notna().sum(axis=1) > 1) & message.isna()
        message[several] = f"fields collide after normalization: {name!r}"
        parts[name] = df[group].bfill(axis=1).iloc[:, 0]
        renamed[name] = tuple(group)
    out = pd.DataFrame(parts, index=df.index)
    out.attrs[RENAMED] = renamed
    collided = message.notna().to_numpy()
    rejected = pd.DataFrame({"reason": "field_collision", "message": message[collided]})
    return out[~collided], rejected


#: The default pipeline's steps, in order.
DEFAULT_STEPS: tuple[Step, ...] = (ingest, normalize, publish)

__all__ = ["DEFAULT_STEPS", "ingest", "normalize", "normalize_frame", "publish"]
