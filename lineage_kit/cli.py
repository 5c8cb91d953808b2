"""The ``lineage-kit`` command line: a thin layer over the Python API.

Exit codes: 0 ok; 1 the command worked but found records rejected or failed (or
integrity violations); 2 bad usage or unreadable input.

Heavy libraries (pandas, networkx, matplotlib) are imported inside the commands
that need them, so ``lineage-kit --help`` and ``lineage-kit run`` start fast.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from .base import __version__
from .errors import InputError, KeyNotFound, LineageKitError, OutputError, StepError

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it


def _database_errors() -> tuple[type[Exception], ...]:
    """What the storage layer raises for a damaged store. Called only in ``except``
    clauses, so ``--help`` never imports the storage layer (a command that met such
    an error has imported it already)."""
    from .store import DATABASE_ERRORS

    return DATABASE_ERRORS


def shown_store(db: str) -> str:
    """``--db`` as it may be printed: a URL without its password (used in error
    paths only, so start-up does not import the storage layer)."""
    from .store import redact

    return redact(db)


def _add_db(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        default="lineage.db",
        help="the lineage store: a SQLite file (default: ./lineage.db) or a postgresql:// URL",
    )


def _add_run_choice(parser: argparse.ArgumentParser, *, allow_all: bool = False) -> None:
    extra = ", or 'all'" if allow_all else ""
    parser.add_argument(
        "--run",
        default="latest",
        help=f"a run id, a unique prefix, or 'latest' (default){extra}",
    )


# ---------------------------------------------------------------------------- run


def _add_run(sub: Any) -> None:
    p = sub.add_parser(
        "run",
        help="run the pipeline over an input file and record lineage",
        description="Run the default pipeline (ingest -> normalize -> publish) over INPUT.",
    )
    p.add_argument("input", help="a JSON array, JSON Lines or CSV file (optionally .gz)")
    _add_db(p)
    p.add_argument(
        "--key",
        default="key",
        help="the key field, or several comma-separated fields for a composite key (default: key)",
    )
    p.add_argument("--format", choices=["json", "jsonl", "csv"], help="override the suffix")
    p.add_argument(
        "--delimiter",
        metavar="CHAR",
        help="CSV field delimiter, e.g. ';' or '\\t' (default: judged from the header: "
        "',' unless the header has none but has ';', a tab or '|')",
    )
    p.add_argument("--chunk-size", type=int, default=2000, help="records per transaction")
    p.add_argument("--fail-fast", action="store_true", help="stop at the first failed record")
    p.add_argument("--report", metavar="FILE.json", help="write a JSON report of every chain")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    p.add_argument(
        "--openlineage-url",
        metavar="URL",
        help="send OpenLineage events to this backend as the run goes (e.g. Marquez)",
    )
    p.add_argument(
        "--openlineage",
        action="store_true",
        help="send OpenLineage events as the client is configured (OPENLINEAGE_URL, "
        "openlineage.yml)",
    )
    p.add_argument(
        "--dask",
        metavar="ADDRESS|local[:N]",
        help="run the chunks on a Dask cluster: a scheduler address (tcp://host:8786), or "
        "'local:N' to start a LocalCluster of N worker processes (default 2); needs "
        "lineage_kit[dask]",
    )
    p.set_defaults(func=_cmd_run)


def _cmd_run(args: argparse.Namespace, out: TextIO) -> int:
    from .pipeline import run_pipeline
    from .sources import check_delimiter, guess_format, parse_key_option

    if args.chunk_size < 1:
        raise _UsageError("--chunk-size must be at least 1")
    try:
        key = parse_key_option(args.key)
    except ValueError as exc:
        raise _UsageError(str(exc)) from None
    delimiter = args.delimiter
    if delimiter is not None:
        delimiter = {"\\t": "\t", "tab": "\t"}.get(delimiter, delimiter)
        try:
            check_delimiter(delimiter)
        except ValueError as exc:
            raise _UsageError(f"--delimiter: {exc}") from None
        if (args.format or guess_format(args.input)) != "csv":
            raise _UsageError("--delimiter applies to CSV input only")
    if args.report:
        check_output_path(args.report, "--report")
    with _executor(args.dask, args.db) as executor:
        return _run(args, out, run_pipeline, key, delimiter, executor)


@contextmanager
def _executor(spec: str | None, db: str) -> Iterator[Any]:
    """The Dask client for ``--dask`` (None without it), closed afterwards; a started
    LocalCluster's dashboard link goes to stderr."""
    if not spec:
        yield None
        return
    from .distributed import refuse_unreachable_sqlite, start_client

    if not spec.startswith("local"):
        refuse_unreachable_sqlite(db, [spec])  # before connecting: no store, no wait
    client, cluster = start_client(spec)
    try:
        if cluster is not None:
            print(f"lineage-kit: Dask dashboard {cluster.dashboard_link}", file=sys.stderr)
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _run(args: argparse.Namespace, out: TextIO, run_pipeline, key, delimiter, executor) -> int:
    try:
        result = run_pipeline(
            args.input,
            db=args.db,
            key=key,
            format=args.format,
            delimiter=delimiter,
            chunk_size=args.chunk_size,
            fail_fast=args.fail_fast,
            progress=False if args.quiet else None,
            openlineage=args.openlineage_url or args.openlineage or None,
            executor=executor,
        )
    except StepError as exc:
        # The stopped run is committed: report it like any other, then say why it stopped.
        reported = _report_and_summary(args, exc.result, out) if exc.result is not None else True
        print(f"lineage-kit: {exc}", file=sys.stderr)
        return EXIT_PROBLEMS if reported else EXIT_USAGE
    if not _report_and_summary(args, result, out):
        return EXIT_USAGE
    return EXIT_OK if result.ok else EXIT_PROBLEMS


def check_output_path(path: str | os.PathLike[str], option: str) -> Path:
    """Refuse an output file that cannot be written, before any work is done.

    Every command that writes a file (``run --report``, ``plot -o``, ``export -o``)
    checks its path here first; :func:`main` prints the error as one line and
    exits 2.

    Parameters
    ----------
    path : str or PathLike
        The output file as given on the command line.
    option : str
        The option it came from, named in the message (``"-o"``, ``"--report"``).

    Returns
    -------
    pathlib.Path

    Raises
    ------
    OutputError
        The path is a directory, its folder does not exist (or is a file), or the
        folder or an existing file there is not writable.

    Examples
    --------
    >>> check_output_path("nodir/y.png", "-o")
    Traceback (most recent call last):
    ...
    lineage_kit.errors.OutputError: -o nodir/y.png: directory nodir does not exist
    """
    out = Path(path)
    folder = out.parent
    problem = None
    if out.is_dir():
        problem = "is a directory, not a file"
    elif not folder.is_dir():
        problem = f"{folder} is not a directory" if folder.exists() else None
        problem = problem or f"directory {folder} does not exist"
    elif not os.access(folder, os.W_OK | os.X_OK):
        problem = f"directory {folder} is not writable"
    elif out.exists() and not os.access(out, os.W_OK):
        problem = "the file exists and is not writable"
    if problem:
        raise OutputError(f"{option} {path}: {problem}", path=str(path))
    return out


def _report_and_summary(args: argparse.Namespace, result: Any, out: TextIO) -> bool:
    """Write the --report (if asked) and print the summary; False if the report failed.

    The run is already committed, so a report that cannot be written does not hide
    the summary: it is printed first, then the error.
    """
    error = None
    if args.report:
        from .report import write_report

        try:
            write_report(args.db, result.run_id, args.report)
        except (OSError, *_database_errors(), LineageKitError) as exc:
            error = exc
    if not args.quiet:
        print(result.summary(), file=out)
        if args.report and error is None:
            print(f"report     {args.report}", file=out)
    if error is not None:
        print(
            f"lineage-kit: error: cannot write the report {args.report}: {error}",
            file=sys.stderr,
        )
        return False
    return True


# --------------------------------------------------------------------------- runs


def _add_runs(sub: Any) -> None:
    p = sub.add_parser("runs", help="list the runs in a store, newest first")
    _add_db(p)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--limit", type=int, default=None, help="show only the newest N runs (N >= 1)")
    p.set_defaults(func=_cmd_runs)


def _cmd_runs(args: argparse.Namespace, out: TextIO) -> int:
    from .lineage_store import connect

    if args.limit is not None and args.limit < 1:
        raise _UsageError("--limit must be at least 1 (without it, every run is listed)")
    with connect(args.db) as store:
        rows = store.run_rows()
    if args.limit is not None:
        rows = rows[: args.limit]
    if args.json:
        from .store.queries import parse_parameters

        for row in rows:
            row["parameters"] = parse_parameters(row["parameters"])
        json.dump(rows, out, indent=2)
        out.write("\n")
        return EXIT_OK
    columns = (
        "run_id",
        "started_at",
        "status",
        "n_input",
        "n_published",
        "n_rejected",
        "n_failed",
        "input_path",
    )
    headers = (
        "run",
        "started (UTC)",
        "status",
        "input",
        "published",
        "rejected",
        "failed",
        "input path",
    )
    table = [
        [
            row["run_id"][:8],
            (row["started_at"] or "")[:19].replace("T", " "),
            *(str(row[c]) if row[c] is not None else "" for c in columns[2:]),
        ]
        for row in rows
    ]
    print_table(headers, table, out)
    if not rows:
        print("(no runs)", file=out)
    return EXIT_OK


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]], out: TextIO) -> None:
    """Print rows as an aligned plain-text table."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(str(cell))) for w, cell in zip(widths, row, strict=True)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    print(line.rstrip(), file=out)
    for row in rows:
        print(
            "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip(), file=out
        )


# -------------------------------------------------------------------------- trace


def _add_trace(sub: Any) -> None:
    p = sub.add_parser(
        "trace",
        help="show one record's chain through the steps",
        description="Show a record's lineage chain (its entries and everything up- and "
        "downstream of them) in step order.",
    )
    p.add_argument("key", help="the record key")
    _add_db(p)
    _add_run_choice(p, allow_all=True)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_cmd_trace)


def _cmd_trace(args: argparse.Namespace, out: TextIO) -> int:
    from .lineage_store import connect

    with connect(args.db) as store:
        run_ids = store.resolve_runs(args.run)
        try:
            rows = store.trace_records(args.key, run_ids)
        except KeyNotFound as exc:  # the command worked, the key has no lineage
            message = f"{exc} of {shown_store(args.db)}"
            if args.json:  # a script reading stdout gets an answer it can parse
                error = {"error": "key_not_found", "key": args.key, "message": message}
                json.dump(error, out, indent=2)
                out.write("\n")
            print(f"lineage-kit: {message}", file=sys.stderr)
            return EXIT_PROBLEMS
    for row in rows:
        row["key"] = row.pop("record_key")
    if args.json:
        json.dump(rows, out, indent=2)
        out.write("\n")
        return EXIT_OK
    multi = len(run_ids) > 1
    headers = ["run"] * multi + [
        "entry",
        "step",
        "key",
        "relation",
        "status",
        "detail",
        "parents",
        "hash",
        "time (UTC)",
    ]
    table = [
        [r["run_id"][:8]] * multi
        + [
            str(r["entry_id"]),
            r["step"],
            r["key"] if r["key"] is not None else "(none)",
            r["relation"],
            r["status"],
            _detail(r),
            ",".join(map(str, r["parent_ids"])) or "-",
            (r["value_hash"] or "")[:12],
            r["created_at"][:23].replace("T", " "),
        ]
        for r in rows
    ]
    print_table(headers, table, out)
    return EXIT_OK


def _detail(row: dict[str, Any]) -> str:
    parts = [p for p in (row["reason"], row["error"]) if p]
    text = ": ".join(dict.fromkeys(parts))
    return text if len(text) <= 60 else text[:57] + "..."


# -------------------------------------------------------------------------- check


def _add_check(sub: Any) -> None:
    p = sub.add_parser(
        "check",
        help="check the integrity of lineage chains",
        description=(
            "Run the integrity checks on a run and print a summary table. Exit code 0 "
            "when no error-severity violation is found (warnings allowed), 1 otherwise."
        ),
    )
    _add_db(p)
    _add_run_choice(p, allow_all=True)
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument(
        "--expected-steps",
        metavar="A,B,C",
        help="comma-separated step names every checked run must have, in order",
    )
    p.add_argument(
        "--limit", type=int, default=20, help="violations listed in the table (default: 20)"
    )
    p.add_argument(
        "--strict",
        action="store_true",
        help="warnings fail too (exit 1), e.g. a run that stopped with status failed",
    )
    p.set_defaults(func=_cmd_check)


def _cmd_check(args: argparse.Namespace, out: TextIO) -> int:
    from .lineage_store import connect

    if args.limit < 0:
        raise _UsageError("--limit must be 0 or more")
    expected = None
    if args.expected_steps is not None:
        expected = [s.strip() for s in args.expected_steps.split(",") if s.strip()]
        if not expected:
            raise _UsageError("--expected-steps needs at least one step name")
    with connect(args.db) as store:
        report = store.check(args.run, expected_steps=expected)
    if args.json:
        json.dump(report.to_dict(), out, indent=2)
        out.write("\n")
    else:
        print(report.to_text(limit=args.limit), file=out)
    failed = not report.ok or (args.strict and report.n_warnings > 0)
    return EXIT_PROBLEMS if failed else EXIT_OK


# --------------------------------------------------------------------------- plot

PLOT_KINDS = ("chain", "funnel", "runs", "timeline")
PLOT_FORMATS = (".png", ".svg", ".pdf")


def _add_plot(sub: Any) -> None:
    p = sub.add_parser(
        "plot",
        help="draw a record's chain, a run's funnel, the last runs or a timeline",
        description=(
            "Draw a plot to a file; the format follows the suffix (.png, .svg, .pdf). "
            "'plot KEY -o chain.png' draws KEY's lineage chain; "
            "'plot --kind funnel|runs|timeline -o FILE' draws run summaries."
        ),
    )
    p.add_argument("key", nargs="?", help="the record key (for --kind chain, the default)")
    p.add_argument(
        "--kind", choices=PLOT_KINDS, default="chain", help="what to draw (default: chain)"
    )
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="FILE.png|.svg|.pdf")
    _add_db(p)
    _add_run_choice(p)
    p.add_argument("--last", type=int, default=10, help="--kind runs: how many runs (default 10)")
    p.add_argument("--dpi", type=int, default=150, help="resolution of a PNG (default 150)")
    p.set_defaults(func=_cmd_plot)


def _cmd_plot(args: argparse.Namespace, out: TextIO) -> int:
    output = Path(args.output)
    if output.suffix.lower() not in PLOT_FORMATS:
        raise _UsageError(
            f"the output's suffix picks the format: {', '.join(PLOT_FORMATS)}; got {output.name!r}"
        )
    if args.kind == "chain" and not args.key:
        raise _UsageError("plot KEY -o FILE draws a chain; give a KEY or a --kind")
    if args.kind != "chain" and args.key:
        raise _UsageError(f"--kind {args.kind} draws a whole run; it takes no KEY")
    if args.last < 1:
        raise _UsageError("--last must be at least 1")
    if args.dpi < 1:
        raise _UsageError("--dpi must be at least 1")
    if args.run == "all" and args.kind != "runs":
        raise _UsageError(
            f"--kind {args.kind} draws one run: give --run an id, a unique prefix or "
            "'latest' (--kind runs draws several)"
        )
    check_output_path(output, "-o")

    import matplotlib

    matplotlib.use("Agg")  # a file, never a window; before pyplot is imported
    import matplotlib.pyplot as plt

    from . import plot
    from .lineage_store import connect

    with connect(args.db) as store:
        try:
            if args.kind == "chain":
                ax = plot.plot_chain(store, args.key, run=args.run)
            elif args.kind == "funnel":
                ax = plot.plot_run(store, run=args.run)
            elif args.kind == "runs":
                ax = plot.plot_runs(store, last=args.last)
            else:
                ax = plot.plot_timeline(store, run=args.run)
        except KeyNotFound as exc:  # like trace: the command worked, the key has no lineage
            plt.close("all")
            print(f"lineage-kit: {exc} of {shown_store(args.db)}", file=sys.stderr)
            return EXIT_PROBLEMS
    try:
        ax.figure.savefig(output, dpi=args.dpi)
    except OSError as exc:  # the disk filled, the folder went away meanwhile, ...
        raise OutputError(
            f"-o {args.output}: cannot be written: {exc.strerror or exc}", path=args.output
        ) from None
    finally:
        plt.close(ax.figure)
    print(f"wrote {output}", file=out)
    return EXIT_OK


# ------------------------------------------------------------------------- export

EXPORT_FORMATS = ("openlineage", "prov-json", "prov-n", "graphml")


def _add_export(sub: Any) -> None:
    p = sub.add_parser(
        "export",
        help="export lineage as OpenLineage events, W3C PROV or GraphML",
        description=(
            "Write a run's lineage in another tool's format: OpenLineage run events "
            "(JSON Lines, one event per line), W3C PROV (PROV-JSON or PROV-N) or GraphML. "
            "Output goes to stdout unless -o is given; --openlineage-url sends the "
            "OpenLineage events to a backend (e.g. Marquez) instead."
        ),
    )
    p.add_argument(
        "--format",
        choices=EXPORT_FORMATS,
        help="what to write (required unless --openlineage-url is given)",
    )
    _add_db(p)
    _add_run_choice(p, allow_all=True)
    p.add_argument("--key", help="prov-json, prov-n, graphml: only this record's lineage")
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    p.add_argument(
        "--openlineage-url", metavar="URL", help="send the OpenLineage events to this backend"
    )
    p.add_argument("--namespace", help="openlineage: the job namespace (default: lineage_kit)")
    p.add_argument("--values", action="store_true", help="prov-*: include each entry's value")
    p.add_argument(
        "--graph",
        choices=("entries", "steps"),
        default="entries",
        help="graphml: the entry graph (default) or the stage summary graph",
    )
    p.set_defaults(func=_cmd_export)


def _cmd_export(args: argparse.Namespace, out: TextIO) -> int:
    fmt = args.format or ("openlineage" if args.openlineage_url else None)
    if fmt is None:
        raise _UsageError("give --format (openlineage, prov-json, prov-n, graphml)")
    if args.openlineage_url and fmt != "openlineage":
        raise _UsageError("--openlineage-url sends OpenLineage events: use --format openlineage")
    if args.openlineage_url and args.output:
        raise _UsageError("--openlineage-url sends the events; it takes no -o")
    if args.key is not None and fmt == "openlineage":
        raise _UsageError(
            "OpenLineage events describe whole runs: --key applies to prov and graphml"
        )
    if args.values and not fmt.startswith("prov"):
        raise _UsageError("--values applies to prov-json and prov-n")
    if args.graph != "entries" and (fmt != "graphml" or args.key is not None):
        raise _UsageError("--graph steps applies to graphml, without --key")
    output = check_output_path(args.output, "-o") if args.output else None
    from .lineage_store import connect

    with connect(args.db) as store:
        try:
            text = _export_text(store, fmt, args)
        except KeyNotFound as exc:
            print(f"lineage-kit: {exc} of {shown_store(args.db)}", file=sys.stderr)
            return EXIT_PROBLEMS
    if args.openlineage_url:
        from .export.emit import redact, send_events

        sent = send_events(text, args.openlineage_url)
        print(f"sent {sent} events to {redact(args.openlineage_url)}", file=out)
        return EXIT_OK
    if output is None:
        out.write(text)
        return EXIT_OK
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise OutputError(
            f"-o {args.output}: cannot be written: {exc.strerror or exc}", path=args.output
        ) from None
    print(f"wrote {output}", file=out)
    return EXIT_OK


def _export_text(store: Any, fmt: str, args: argparse.Namespace) -> Any:
    """The export as text (the events themselves for --openlineage-url)."""
    if fmt == "openlineage":
        from .export.openlineage import to_json_lines

        events = store.openlineage_events(args.run, namespace=args.namespace)
        return events if args.openlineage_url else to_json_lines(events)
    if fmt.startswith("prov"):
        from .export.prov import prov_json, prov_n

        doc = store.to_prov(args.run, key=args.key, values=args.values)
        return prov_json(doc) + "\n" if fmt == "prov-json" else prov_n(doc) + "\n"
    import io

    from .export.graphml import write_graphml

    graph = store.step_graph(args.run) if args.graph == "steps" else store.graph(args.run, args.key)
    buffer = io.BytesIO()
    write_graphml(graph, buffer)
    return buffer.getvalue().decode("utf-8")


# ------------------------------------------------------------------------- parser


class _UsageError(Exception):
    pass


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of ``lineage-kit``."""
    parser = argparse.ArgumentParser(
        prog="lineage-kit",
        description="Record-level data lineage in a SQLite file or a shared PostgreSQL store.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for add in (_add_run, _add_runs, _add_trace, _add_check, _add_plot, _add_export):
        add(sub)
    for command in sub.choices.values():
        command.set_defaults(parser=command)  # usage errors show the command's usage
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run the CLI.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name; defaults to ``sys.argv[1:]``.
    out : file, optional
        Where normal output goes; defaults to ``sys.stdout``.

    Returns
    -------
    int
        The exit code: 0 ok, 1 problems found, 2 bad usage, unreadable input or
        store, 130 interrupted (Ctrl-C).

    Examples
    --------
    >>> import io
    >>> main(["runs", "--db", "lineage.db"], out=io.StringIO())
    0
    """
    out = out or sys.stdout
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits on --help (0) and on bad usage (2)
        return int(exc.code or 0)
    try:
        return args.func(args, out)
    except _UsageError as exc:
        args.parser.print_usage(sys.stderr)
        print(f"lineage-kit: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (InputError, LineageKitError) as exc:
        print(f"lineage-kit: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except _database_errors() as exc:  # a damaged store (the file checks passed)
        print(f"lineage-kit: error: {shown_store(args.db)}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # `lineage-kit runs | head`
        return EXIT_OK
    except KeyboardInterrupt:
        print("lineage-kit: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
