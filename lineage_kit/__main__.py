"""``python -m lineage_kit`` runs the CLI."""

from .cli import main

raise SystemExit(main())
