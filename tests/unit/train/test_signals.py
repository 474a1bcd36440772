"""Stop signals: recorded, not fatal; once the stop's checkpoint is saved, ignored; Ctrl-C twice
aborts."""

import os
import signal

import pytest
import torch

from engine.train.signals import SIGNALS, StopRequest


@pytest.fixture
def stop():
    """A StopRequest owning this process's handlers for the test, the old ones put back after."""
    before = {sig: signal.getsignal(sig) for sig in SIGNALS}
    yield StopRequest(torch.device("cpu"))
    for sig, handler in before.items():
        signal.signal(sig, handler)


def test_signal_is_recorded_then_ignored_after_settle(stop):
    os.kill(os.getpid(), signal.SIGUSR1)
    assert stop.received == signal.SIGUSR1
    stop.settle()
    assert all(signal.getsignal(sig) == signal.SIG_IGN for sig in SIGNALS)
    os.kill(os.getpid(), signal.SIGTERM)  # would end this process without the settle
    stop.received = None
    os.kill(os.getpid(), signal.SIGUSR1)
    assert stop.received is None


def test_ctrl_c_asks_for_a_save_and_a_second_one_aborts(stop):
    os.kill(os.getpid(), signal.SIGINT)
    assert stop.received == signal.SIGINT
    with pytest.raises(KeyboardInterrupt, match="aborted without saving"):
        os.kill(os.getpid(), signal.SIGINT)
