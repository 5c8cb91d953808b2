"""Offline validation of OpenLineage events against the specs in ../shared/specs/.

Every ``*.json`` under the OpenLineage spec folder and lineage_kit's own facet
schemas are loaded into one ``referencing.Registry`` keyed by their ``$id``; events
are validated against the RunEvent definition, each facet against its own
``_schemaURL``, and each facet map against the facet file's top-level
``properties`` (which checks the facet's name too).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
from referencing import Registry, Resource

ROOT = Path(__file__).resolve().parent.parent
# The specs live beside the checkout (../shared/specs, as in CI); LINEAGE_KIT_SPECS
# names another copy.
SPECS = Path(os.environ.get("LINEAGE_KIT_SPECS", ROOT.parent / "shared" / "specs"))
OPENLINEAGE_SPECS = SPECS / "openlineage"
PROV_JSON_SCHEMA = SPECS / "prov-json" / "prov-json.schema.json"
OUR_SCHEMAS = ROOT / "lineage_kit" / "export" / "schemas"
RUN_EVENT = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"


def _registry() -> Registry:
    files = [*OPENLINEAGE_SPECS.rglob("*.json"), *OUR_SCHEMAS.rglob("*.json")]
    if len(files) < 50:  # a missing copy of the specs must fail, not pass vacuously
        raise FileNotFoundError(
            f"OpenLineage specs not found under {OPENLINEAGE_SPECS}: the export tests "
            "validate against ../shared/specs beside the checkout; set LINEAGE_KIT_SPECS "
            "to the folder holding openlineage/ and prov-json/"
        )
    resources = []
    for path in files:
        schema = json.loads(path.read_text(encoding="utf-8"))
        resources.append((schema["$id"], Resource.from_contents(schema)))
    return Registry().with_resources(resources)


REGISTRY = _registry()
FORMATS = jsonschema.Draft202012Validator.FORMAT_CHECKER


def _validator(ref: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator({"$ref": ref}, registry=REGISTRY, format_checker=FORMATS)


def facets_of(event: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """``(where, name, facet)`` for every facet in an event."""
    for where, owner in (("run", event["run"]), ("job", event["job"])):
        for name, facet in (owner.get("facets") or {}).items():
            yield where, name, facet
    for side in ("inputs", "outputs"):
        for dataset in event.get(side) or []:
            for group in ("facets", "inputFacets", "outputFacets"):
                for name, facet in (dataset.get(group) or {}).items():
                    yield f"{side}.{group}", name, facet


def validate_event(event: dict[str, Any]) -> None:
    """Raise ``jsonschema.ValidationError`` unless the event and all its facets are valid."""
    _validator(RUN_EVENT).validate(event)
    for _where, name, facet in facets_of(event):
        url = facet["_schemaURL"]
        _validator(url).validate(facet)
        # the facet file's top-level properties name the facet: check the name too
        _validator(url.split("#", 1)[0]).validate({name: facet})
        if name not in REGISTRY.contents(url.split("#", 1)[0]).get("properties", {}):
            raise jsonschema.ValidationError(f"facet {name!r} is not the name {url} defines")
