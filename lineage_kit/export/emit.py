"""Sending OpenLineage events through the ``openlineage-python`` client's transports.

Extra ``lineage_kit[openlineage]``. Where events go is configured the way that client
is: ``OPENLINEAGE_URL`` (and ``OPENLINEAGE_API_KEY``, ``OPENLINEAGE_ENDPOINT``), an
``openlineage.yml`` (``$OPENLINEAGE_CONFIG``, the working folder, ``~/.openlineage``)
or ``OPENLINEAGE__TRANSPORT__...`` variables; or explicitly: a URL (HTTP, the
endpoint ``api/v1/lineage`` Marquez serves), a client config dict such as
``{"transport": {"type": "file", "log_file_path": "events.jsonl"}}``, or an
``OpenLineageClient``.

:func:`send_events` sends the events of past runs. :class:`OpenLineageEmitter` is
the listener a pipeline run calls as it goes (``Pipeline.run(..., openlineage=...)``):
it sends from a background thread, so a backend that is down or slow never fails or
stalls the run; the first failure is warned about once, the rest of the run's events
are not sent (they can be sent later: ``lineage-kit export --openlineage-url URL``),
and at the end of the run it waits at most ``timeout`` seconds for what is queued.
"""

from __future__ import annotations

import queue
import re
import threading
import warnings
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ..errors import InvalidArgument, MissingExtra, RunNotFound
from .openlineage import RunFacts, gather, run_events, step_event

if TYPE_CHECKING:
    from ..store import Backend

#: Seconds one HTTP request may take, and the longest a run's end waits for its events.
DEFAULT_TIMEOUT = 5.0


_PASSWORD = re.compile(r"(://[^/@:\s]*):[^/@\s]*@")


def redact(text: str) -> str:
    """``text`` with the password of every URL in it replaced by ``***``.

    Error messages of HTTP clients name the URL, and a URL may hold a password.

    Examples
    --------
    >>> redact("401 for url: http://me:s3cret@host:5000/api/v1/lineage")
    '401 for url: http://me:***@host:5000/api/v1/lineage'
    """
    return _PASSWORD.sub(r"\1:***@", text)


class OpenLineageWarning(UserWarning):
    """Events could not be sent; the run and its lineage are unaffected."""


def _client_module() -> Any:
    try:
        from openlineage.client import client
    except ImportError:
        raise MissingExtra(
            "sending OpenLineage events", "openlineage", "openlineage-python"
        ) from None
    return client


def make_client(target: Any = True, *, timeout: float = DEFAULT_TIMEOUT) -> Any:
    """An ``OpenLineageClient`` for ``target``.

    Parameters
    ----------
    target : True, str, dict or OpenLineageClient, default True
        True: the client's own configuration (environment, ``openlineage.yml``); a
        URL: HTTP to ``{url}/api/v1/lineage`` with ``timeout`` and one retry; a dict:
        the client's ``config`` (``{"transport": {...}}``); a client: itself.
    timeout : float, default 5.0
        Seconds per HTTP request (URL targets only).

    Returns
    -------
    openlineage.client.OpenLineageClient

    Raises
    ------
    MissingExtra
        ``openlineage-python`` is not installed.
    InvalidArgument
        ``target`` is none of the above, or the URL is not an http(s) URL (a
        ``ValueError`` too; a password in it is not repeated).

    Examples
    --------
    >>> client = make_client("http://localhost:5000")  # no request is made yet
    >>> type(client).__name__
    'OpenLineageClient'
    """
    module = _client_module()
    if isinstance(target, module.OpenLineageClient):
        return target
    if target is True:
        return module.OpenLineageClient()
    if isinstance(target, Mapping):
        return module.OpenLineageClient(config=dict(target))
    if isinstance(target, str):
        from openlineage.client.transport.http import HttpConfig, HttpTransport
        from openlineage.client.transport.http_common import DEFAULT_RETRY_CONFIG

        if not target.startswith(("http://", "https://")):
            # the URL may hold a password: never echo it
            raise InvalidArgument(
                f"an OpenLineage URL starts with http:// or https://, not {redact(target)!r}",
                argument="openlineage",
            )
        config = HttpConfig(
            url=target, timeout=timeout, retry={**DEFAULT_RETRY_CONFIG, "total": 1, "connect": 1}
        )
        return module.OpenLineageClient(transport=HttpTransport(config))
    raise InvalidArgument(
        "openlineage= takes True (the client's own configuration), a URL, a client config "
        f"dict or an OpenLineageClient, not {type(target).__name__}",
        argument="openlineage",
    )


def to_client_event(event: Mapping[str, Any]) -> Any:
    """An event dict as the client's ``RunEvent`` (facets stay dicts; the JSON is the same)."""
    from openlineage.client import event_v2 as ev

    def datasets(kind: Any, items: Iterable[Mapping[str, Any]], extra: str) -> list:
        return [
            kind(
                namespace=d["namespace"],
                name=d["name"],
                facets=dict(d.get("facets") or {}),
                **{extra: dict(d[extra]) if d.get(extra) else None},  # None: left out
            )
            for d in items
        ]

    return ev.RunEvent(
        eventType=ev.RunState(event["eventType"]),
        eventTime=event["eventTime"],
        producer=event["producer"],
        run=ev.Run(runId=event["run"]["runId"], facets=dict(event["run"].get("facets") or {})),
        job=ev.Job(
            namespace=event["job"]["namespace"],
            name=event["job"]["name"],
            facets=dict(event["job"].get("facets") or {}),
        ),
        inputs=datasets(ev.InputDataset, event.get("inputs") or [], "inputFacets"),
        outputs=datasets(ev.OutputDataset, event.get("outputs") or [], "outputFacets"),
    )


def send_events(
    events: Iterable[Mapping[str, Any]], target: Any = True, *, timeout: float = DEFAULT_TIMEOUT
) -> int:
    """Send events now, in order, stopping at the first that fails.

    Parameters
    ----------
    events : iterable of dict
        From :func:`lineage_kit.export.openlineage.openlineage_events`.
    target : see :func:`make_client`
    timeout : float, default 5.0

    Returns
    -------
    int
        The number of events sent.

    Raises
    ------
    MissingExtra
        ``openlineage-python`` is not installed.
    LineageKitError
        An event could not be sent (the message names the backend's error).

    Examples
    --------
    >>> to_file = {"transport": {"type": "file", "log_file_path": "events.jsonl"}}
    >>> send_events(store.openlineage_events(), to_file)
    8
    """
    from ..errors import LineageKitError

    client = make_client(target, timeout=timeout)
    sent = 0
    try:
        for event in events:
            try:
                client.emit(to_client_event(event))
            except Exception as exc:
                raise LineageKitError(
                    f"OpenLineage event {sent + 1} could not be sent "
                    f"({sent} sent before it): {type(exc).__name__}: {redact(str(exc))}"
                ) from None
            sent += 1
    finally:
        client.close(timeout)
    return sent


_STOP = object()


class _Sender:
    """One run's sending thread: events in order, none after the first failure."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.queue: queue.Queue[Any] = queue.Queue()
        self.failure: BaseException | None = None
        self.done = threading.Event()
        threading.Thread(target=self._work, name="lineage-kit-openlineage", daemon=True).start()

    def _work(self) -> None:
        try:
            while (event := self.queue.get()) is not _STOP:
                if self.failure is not None:
                    continue  # the backend failed once: do not wait on it again
                try:
                    self.client.emit(to_client_event(event))
                except Exception as exc:
                    self.failure = exc
        finally:
            self.done.set()


class OpenLineageEmitter:
    """Emits a run's OpenLineage events while it runs (the pipeline's run listener).

    Parameters
    ----------
    target : see :func:`make_client`, default True
    namespace : str, optional
        The job namespace (see :func:`~lineage_kit.export.openlineage.default_namespace`).
    timeout : float, default 5.0
        Seconds per HTTP request (URL targets), and the longest the end of the run
        waits for events still queued.

    Raises
    ------
    MissingExtra
        ``openlineage-python`` is not installed.

    Examples
    --------
    >>> to_file = {"transport": {"type": "file", "log_file_path": "live.jsonl", "append": True}}
    >>> emitter = OpenLineageEmitter(to_file, namespace="shop")
    >>> pipeline = lk.Pipeline([lk.steps.ingest, lk.steps.publish])
    >>> pipeline.run("data/sample_input.json", db="lineage.db", openlineage=emitter).status
    'completed'
    """

    def __init__(
        self, target: Any = True, *, namespace: str | None = None, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        self._client = make_client(target, timeout=timeout)
        self.namespace = namespace
        self.timeout = timeout
        self._facts: RunFacts | None = None
        self._sender: _Sender | None = None
        self._sent: set[tuple[str, str]] = set()
        self._error: BaseException | None = None
        self._warned = False

    # -- the listener interface the pipeline and engine call (never raises)

    def run_started(self, backend: Backend, run_id: str) -> None:
        """The run is written to the store: send its START."""
        self._sender = _Sender(self._client)  # one per run: an emitter serves run after run
        self._facts, self._sent, self._error, self._warned = None, set(), None, False
        try:
            self._facts = gather(backend, run_id, stats=False)
            self._put(run_events(self._facts, self.namespace)[0])
        except Exception as exc:
            self._error = exc

    def step_started(self, position: int, stamp: str) -> None:
        """A step took its first chunk: send its START."""
        if self._facts is None:
            return
        try:
            self._put(step_event(self._facts, position, "START", self.namespace, time=stamp))
        except Exception as exc:
            self._error = self._error or exc

    def run_ended(self, backend: Backend, run_id: str) -> None:
        """The run is finished in the store: send the rest of its events.

        Waits at most ``timeout`` seconds for them; a run whose events could not all
        be sent gets one :class:`OpenLineageWarning`.
        """
        sender = self._sender
        if sender is None:
            return
        try:
            try:
                events = run_events(gather(backend, run_id), self.namespace)
            except RunNotFound:  # an input error removed the run: abort what was started
                events = self._discarded()
            for event in events:
                if (event["run"]["runId"], event["eventType"]) not in self._sent:
                    self._put(event)
        except Exception as exc:
            self._error = self._error or exc
        sender.queue.put(_STOP)
        finished = sender.done.wait(self.timeout)
        self._warn(run_id, late=not finished)
        self._sender = None

    # -- internals

    def _discarded(self) -> list[dict]:
        """ABORT for the run and the steps whose START was sent (the run is gone)."""
        if self._facts is None:
            return []
        facts = RunFacts(
            run={**self._facts.run, "status": "interrupted", "error": "input error; run removed"},
            steps=self._facts.steps,
            store=self._facts.store,
        )
        return [
            e
            for e in run_events(facts, self.namespace)
            if e["eventType"] != "START" and (e["run"]["runId"], "START") in self._sent
        ]

    def _put(self, event: dict) -> None:
        assert self._sender is not None
        self._sent.add((event["run"]["runId"], event["eventType"]))
        self._sender.queue.put(event)
        self._warn(self._facts.run_id if self._facts else "", late=False)

    def _warn(self, run_id: str, late: bool) -> None:
        failure = self._error or (self._sender.failure if self._sender else None)
        if self._warned or (failure is None and not late):
            return
        self._warned = True
        why = (
            f"{type(failure).__name__}: {redact(str(failure))}"
            if failure is not None
            else f"the backend did not take them within {self.timeout:g} s"
        )
        warnings.warn(
            f"OpenLineage events of run {run_id} were not all sent ({why}); the run and "
            f"its lineage are kept: send them later with `lineage-kit export --run {run_id} "
            "--openlineage-url URL`",
            OpenLineageWarning,
            stacklevel=3,
        )


def listener_for(openlineage: Any, timeout: float = DEFAULT_TIMEOUT) -> OpenLineageEmitter:
    """The emitter behind ``Pipeline.run(..., openlineage=...)``.

    An :class:`OpenLineageEmitter` is used as it is; anything else is its ``target``.
    """
    if isinstance(openlineage, OpenLineageEmitter):
        return openlineage
    return OpenLineageEmitter(openlineage, timeout=timeout)


__all__ = [
    "DEFAULT_TIMEOUT",
    "OpenLineageEmitter",
    "OpenLineageWarning",
    "listener_for",
    "make_client",
    "send_events",
    "to_client_event",
]
