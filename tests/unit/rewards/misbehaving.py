"""A stand-in verifier for the pool's tests that hangs, crashes, hogs memory or fails on
command (the response says which)."""

import os
import signal
import time

from engine.errors import DataError


def score(dataset, response, truth, math_rule):
    if response == "hang":
        time.sleep(60)
    if response == "crash":
        os.kill(os.getpid(), signal.SIGKILL)
    if response == "hog":
        return float(len(bytearray(8 << 30)))  # beyond the worker's memory limit
    if response == "bug":
        raise KeyError("oops")
    if truth is None:
        raise DataError("ground truth is null")
    return float(response == truth)
