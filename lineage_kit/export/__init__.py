"""Exports of lineage to the ecosystem's formats.

- :mod:`~lineage_kit.export.openlineage`: OpenLineage run events (no dependency).
- :mod:`~lineage_kit.export.emit`: sending events through ``openlineage-python``'s
  transports, after a run or live while it runs (extra ``lineage_kit[openlineage]``).
- :mod:`~lineage_kit.export.prov`: W3C PROV documents (extra ``lineage_kit[prov]``).
- :mod:`~lineage_kit.export.graphml`: GraphML files of lineage graphs.

Exporters read the store through its public API and never write to it.
"""
