"""Stop signals: recorded, not fatal; once the stop's checkpoint is saved, ignored."""

import os
import signal

import pytest
import torch

from engine.train.signals import SIGNALS, StopRequest


def test_signal_is_recorded_then_ignored_after_settle():
    before = {sig: signal.getsignal(sig) for sig in SIGNALS}
    try:
        stop = StopRequest(torch.device("cpu"))
        os.kill(os.getpid(), signal.SIGUSR1)
        assert stop.received == signal.SIGUSR1
        stop.settle()
        assert all(signal.getsignal(sig) == signal.SIG_IGN for sig in SIGNALS)
        os.kill(os.getpid(), signal.SIGTERM)  # would end this process without the settle
        stop.received = None
        os.kill(os.getpid(), signal.SIGUSR1)
        assert stop.received is None
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)


def test_ctrl_c_asks_for_a_save_and_a_second_one_aborts():
    before = {sig: signal.getsignal(sig) for sig in SIGNALS}
    try:
        stop = StopRequest(torch.device("cpu"))
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.received == signal.SIGINT
        with pytest.raises(KeyboardInterrupt, match="aborted without saving"):
            os.kill(os.getpid(), signal.SIGINT)
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)
