"""Ctrl-C during a run, noted as well as raised, so that it is never lost.

Python raises ``KeyboardInterrupt`` wherever the main thread happens to be when
SIGINT arrives. Raised inside a finaliser (a ``__del__``, a weakref callback, code
the garbage collector runs), it is printed as "Exception ignored" and dropped, and
a run would go on to end as ``completed`` although the user asked it to stop.
While a run executes, :func:`noted_interrupts` installs a SIGINT handler that
raises ``KeyboardInterrupt`` as Python's own does and also notes the signal;
:func:`checked` raises it again before the next chunk is read, and the pipeline
once more after the last chunk. (After a merge step no more input is read: a Ctrl-C
lost there is raised once the steps after the merge are done, and the run, whole by
then, is still marked ``interrupted``.)
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")


@contextmanager
def noted_interrupts() -> Iterator[Callable[[], bool]]:
    """Note SIGINT while the block runs; yields a function saying whether one came.

    The handler is installed only in the main thread and only over Python's own
    (``signal.default_int_handler``): a handler of the caller's (a notebook
    kernel's, say) is left as it is, and then nothing is noted. So is SIGINT
    ignored: a process started in the background by a shell without job control
    (``cmd &`` in a script) inherits it ignored, and Ctrl-C does not stop it.

    Examples
    --------
    >>> import signal
    >>> before = signal.getsignal(signal.SIGINT)
    >>> with noted_interrupts() as interrupted:
    ...     interrupted()  # True once SIGINT came (tests/test_pipeline.py sends one)
    False
    >>> signal.getsignal(signal.SIGINT) is before  # the handler is put back
    True
    """
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield lambda: False
        return
    noted: list[int] = []

    def handler(signum: int, frame: Any) -> None:
        noted.append(signum)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, handler)
    try:
        yield lambda: bool(noted)
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def checked(items: Iterable[T], interrupted: Callable[[], bool]) -> Iterator[T]:
    """``items``, raising ``KeyboardInterrupt`` before the next one once
    ``interrupted()`` is true (a Ctrl-C that was raised where it got lost).

    Examples
    --------
    >>> list(checked([1, 2], lambda: False))
    [1, 2]
    >>> try:
    ...     next(checked([1, 2], lambda: True))
    ... except KeyboardInterrupt:
    ...     print("interrupted before the first")
    interrupted before the first
    """
    for item in items:
        if interrupted():
            raise KeyboardInterrupt
        yield item
