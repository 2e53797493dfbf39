"""A spinner for slow steps that have no count to show (loading a model, opening a store)."""

from __future__ import annotations

import contextlib
import itertools
import sys
import threading
import time
from collections.abc import Iterator
from typing import TextIO

FRAMES = "|/-\\"


@contextlib.contextmanager
def spinner(message: str, stream: TextIO | None = None, interval: float = 0.1) -> Iterator[None]:
    """Show ``message``, a spinner and the seconds elapsed while the block runs, then clear the line.

    Only on a terminal: in a pipe, a log or a test the stream gets nothing, so a command's error
    output stays the one line it promises.
    """
    stream = stream or sys.stderr
    if not stream.isatty():
        yield
        return
    done = threading.Event()
    started = time.perf_counter()

    def draw() -> None:
        for frame in itertools.cycle(FRAMES):
            stream.write(f"\r{frame} {message} ({time.perf_counter() - started:.1f} s)")
            stream.flush()
            if done.wait(interval):
                break
        stream.write("\r\033[K")  # erase the spinner's line
        stream.flush()

    thread = threading.Thread(target=draw, name="ctxopt-spinner", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
