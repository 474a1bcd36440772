"""Verifiable rewards: pure functions `score(response, ground_truth) -> float` for the RLVR data's
`dataset` values (gsm8k, math, ifeval), bounded in time and memory on any input, and a process
pool that scores many answers at once (`engine.rewards.pool`)."""
