"""A one-line spinner on stderr while `run` waits for its first output: which attempt, for how long.

Only on a terminal (a pipe gets nothing). It redraws itself in place from a daemon thread and
clears its line before anything else is written to stderr (`say`) and when it stops. The label is
untrusted (it names instances) and goes through the sanitiser.
"""

from __future__ import annotations

import shutil
import sys
import threading
import time

from ollamactl.cli import output

_FRAMES = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
_CLEAR = "\r\x1b[K"


class Spinner:
    def __init__(self, label: str, interval: float = 0.1):
        self._label = output.clean(label, None)
        self._since = time.monotonic()
        self._interval = interval
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._drawn = False
        self._thread = threading.Thread(target=self._spin, name="ollamactl-spinner", daemon=True)
        self._thread.start()

    def show(self, label: str) -> None:
        """Say what is being waited for now; the clock restarts."""
        with self._lock:
            self._label = output.clean(label, None)
            self._since = time.monotonic()

    def say(self, text: str) -> None:
        """A message line on stderr, below which the spinner goes on."""
        with self._lock:
            self._clear()
            output.say(text)

    def stop(self) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        self._thread.join()
        with self._lock:
            self._clear()

    def _spin(self) -> None:
        frame = 0
        while not self._stopped.wait(self._interval):
            with self._lock:
                waited = time.monotonic() - self._since
                width = max(20, shutil.get_terminal_size((80, 24)).columns - 1)
                line = f"{_FRAMES[frame % len(_FRAMES)]} {self._label}, waiting {waited:.0f} s"
                self._write(_CLEAR + output.clean(line, width))
                self._drawn = True
            frame += 1

    def _clear(self) -> None:
        if self._drawn:
            self._write(_CLEAR)
            self._drawn = False

    @staticmethod
    def _write(text: str) -> None:
        try:
            sys.stderr.write(text)
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
