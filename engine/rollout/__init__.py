"""Generation with vLLM: the engines behind evaluation and, next, RLVR rollouts."""
