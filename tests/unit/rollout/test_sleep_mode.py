"""Sleep mode around a refit (GPU only; here with stand-ins for vLLM): the engines' weights wake
first and take the new weights, and only then does their KV cache take its memory back; the KV
cache cannot wake before the weights, nor an engine generate while any part sleeps. A failing
shutdown is not repeated."""

from types import SimpleNamespace

import pytest
import torch

from engine.rollout import colocated
from engine.rollout.colocated import ColocatedRollout
from engine.rollout.vllm_engine import RolloutEngine, SamplingSpec


class _Recording:
    def __init__(self, calls):
        self.calls = calls

    def wake_up(self, *args, **kwargs):
        self.calls.append(("wake_up", args, kwargs))

    def sleep(self, **kwargs):
        self.calls.append(("sleep", kwargs))

    def load_weights(self, tensors, version):
        self.calls.append(("load_weights", list(tensors), version))


def test_a_refit_wakes_the_weights_loads_them_then_wakes_the_kv_cache(monkeypatch):
    calls = []
    monkeypatch.setattr(colocated, "hf_weights", lambda model, m: iter([("w", model)]))
    rollout = object.__new__(ColocatedRollout)
    rollout.engine, rollout.cfg = _Recording(calls), SimpleNamespace(model=None)
    rollout.refit("weights of step 3", version=3)
    assert calls == [("wake_up", ("weights",), {}),
                     ("load_weights", [("w", "weights of step 3")], 3),
                     ("wake_up", ("kv_cache",), {})]
    assert rollout.version == 3


def _engine_on_a_gpu(calls, monkeypatch):
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: calls.append(("empty_cache",)))
    engine = object.__new__(RolloutEngine)
    engine.cuda, engine.llm, engine.asleep = True, _Recording(calls), set()
    engine.weight_version = 0
    return engine


@pytest.mark.parametrize("part, tags", [(None, None), ("weights", ["weights"]),
                                        ("kv_cache", ["kv_cache"])])
def test_waking_a_part_asks_vllm_for_its_tag_after_emptying_the_cache(monkeypatch, part, tags):
    calls = []
    _engine_on_a_gpu(calls, monkeypatch).wake_up(part)
    assert calls == [("empty_cache",), ("wake_up", (), {"tags": tags})]


def test_an_unknown_part_is_refused(monkeypatch):
    with pytest.raises(ValueError, match="'kv': weights or kv_cache"):
        _engine_on_a_gpu([], monkeypatch).wake_up("kv")


def test_on_cpus_waking_does_nothing():
    engine = object.__new__(RolloutEngine)
    engine.cuda, engine.llm, engine.asleep = False, None, set()
    engine.sleep()
    engine.wake_up("weights")  # vLLM has no sleep mode on CPUs: no call reaches it


def test_after_a_sleep_the_kv_cache_wakes_after_the_weights_and_then_it_generates(monkeypatch):
    calls = []
    engine = _engine_on_a_gpu(calls, monkeypatch)
    engine.sleep()
    assert calls == [("sleep", {"level": 2})] and engine.asleep == {"weights", "kv_cache"}
    with pytest.raises(RuntimeError, match="wake them before its KV cache"):
        engine.wake_up("kv_cache")
    engine.wake_up("weights")
    with pytest.raises(RuntimeError, match=r"asleep \(kv_cache freed\): refit"):
        engine.generate([[1, 2]], SamplingSpec())  # refused before vLLM is asked
    engine.wake_up("kv_cache")
    engine.check_ready(version=None)
    assert [c for c in calls if c[0] == "wake_up"] == [("wake_up", (), {"tags": ["weights"]}),
                                                       ("wake_up", (), {"tags": ["kv_cache"]})]
    assert engine.asleep == set()
    engine.sleep()
    engine.wake_up()  # both at once
    assert engine.asleep == set()


def test_a_failing_shutdown_is_not_repeated():
    attempts = []

    def shutdown():
        attempts.append(1)
        raise RuntimeError("engine core already dead")

    engine = object.__new__(RolloutEngine)
    engine.callers_process_group = False
    engine.llm = SimpleNamespace(llm_engine=SimpleNamespace(
        engine_core=SimpleNamespace(shutdown=shutdown)))
    with pytest.raises(RuntimeError, match="already dead"):
        engine.shutdown()
    engine.shutdown()
    assert attempts == [1] and engine.llm is None
