"""Work bounded in real time: `within(seconds, work, fallback)` runs work() under a one-shot
real-time timer (`signal.setitimer`) and returns `fallback` when it runs out. Only the main
thread receives the timer's signal, so off it nothing can be bounded and `within` returns the
fallback without running the work (`on_main_thread` tells callers which case they are in)."""

from __future__ import annotations

import signal
import threading
import time


class _OutOfTime(BaseException):
    """Raised by the timer inside bounded work; a BaseException so that the libraries'
    `except Exception` blocks let it through."""


def on_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


class _Timer:
    """A one-shot ITIMER_REAL that raises _OutOfTime; stop() restores the SIGALRM handler and
    any outer timer found at start (with its remaining time), and may be called twice."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.running = False

    def start(self) -> None:
        self.started = time.monotonic()
        self.outer_handler = signal.signal(signal.SIGALRM, _raise_out_of_time)
        self.running = True
        self.outer_delay, self.outer_interval = signal.setitimer(
            signal.ITIMER_REAL, self.seconds)
        if 0 < self.outer_delay < self.seconds:
            signal.setitimer(signal.ITIMER_REAL, self.outer_delay)

    def stop(self) -> None:
        if not self.running:
            return
        signal.setitimer(signal.ITIMER_REAL, 0)
        self.running = False
        handler = self.outer_handler
        signal.signal(signal.SIGALRM, signal.SIG_DFL if handler is None else handler)
        if self.outer_delay > 0:
            left = self.outer_delay - (time.monotonic() - self.started)
            signal.setitimer(signal.ITIMER_REAL, max(left, 1e-6), self.outer_interval)


def _raise_out_of_time(signum, frame):
    raise _OutOfTime


def within(seconds: float, work, fallback):
    """work() if it returns within `seconds` of real time, else `fallback` (also when it raises
    an Exception). Off the main thread the timer cannot reach it: `fallback`, work not run."""
    if not on_main_thread():
        return fallback
    timer = _Timer(seconds)
    try:
        try:
            timer.start()
            return work()
        finally:
            timer.stop()
    except _OutOfTime:
        timer.stop()  # when the timer fired inside the first stop()
        return fallback
    except Exception:
        return fallback
