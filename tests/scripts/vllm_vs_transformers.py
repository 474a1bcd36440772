"""vLLM (through engine.rollout) against `transformers` on one Hugging Face directory: greedy
answers token for token, and vLLM's per-token log-probs against log-softmax of transformers'
fp32 logits on the same tokens — greedy, and sampled at a temperature (where the log-probs must
be those of the tempered distribution).

    python -m tests.scripts.vllm_vs_transformers HF_DIR --prompts FILE.jsonl [--limit 8]
        [--max-new-tokens 32] [--temperature 0.7]

Prompts are chat rows (`messages`; the last assistant turn is dropped) rendered with the tulu
template and the byte tokenizer, as the tiny recipes train. Prints one JSON line.
"""

import argparse
import json

import torch

from engine.data.chat_template import ChatFormat
from engine.data.tokenizer import load_tokenizer
from engine.rollout.vllm_engine import RolloutEngine, SamplingSpec


def prompts_of(path: str, chat: ChatFormat, limit: int) -> list[list[int]]:
    rows = [json.loads(line) for line in open(path)][:limit]
    return [chat.prompt_ids([m for m in r["messages"] if m["role"] != "assistant"]) for r in rows]


def tempered_logprobs(model, prompt, answer, temperature):
    """log-softmax(logits / T) of `answer`'s tokens after `prompt`, by transformers in fp32."""
    ids = torch.tensor([prompt + answer])
    with torch.no_grad():
        logits = model(ids).logits[0, len(prompt) - 1:-1].double() / temperature
    return logits.log_softmax(-1).gather(1, torch.tensor(answer)[:, None])[:, 0]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("hf_dir")
    parser.add_argument("--prompts", required=True)
    parser.add_argument("--limit", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--temperature", type=float, default=0.7)
    args = parser.parse_args()
    from transformers import AutoModelForCausalLM

    chat = ChatFormat("tulu", load_tokenizer("byte"))
    prompts = prompts_of(args.prompts, chat, args.limit)
    stops = sorted(chat.stop_ids)
    with RolloutEngine(args.hf_dir, stop_token_ids=stops, max_model_len=1024, dtype="float32",
                       seed=0) as engine:
        greedy = [c[0] for c in engine.generate(prompts, SamplingSpec(
            max_new_tokens=args.max_new_tokens))]
        sampled = [c[0] for c in engine.generate(prompts, SamplingSpec(
            temperature=args.temperature, max_new_tokens=args.max_new_tokens, seed=1))]
    model = AutoModelForCausalLM.from_pretrained(args.hf_dir, dtype=torch.float32).eval()
    reference = []
    for p in prompts:
        with torch.no_grad():
            out = model.generate(torch.tensor([p]), max_new_tokens=args.max_new_tokens,
                                 do_sample=False, eos_token_id=stops, pad_token_id=chat.tok.pad_id)
        reference.append(out[0, len(p):].tolist())

    def gap(completions, temperature):
        return max((torch.tensor(c.logprobs, dtype=torch.float64)
                    - tempered_logprobs(model, p, c.token_ids, temperature)).abs().max().item()
                   for p, c in zip(prompts, completions))

    print(json.dumps({
        "prompts": len(prompts),
        "same_greedy_tokens": [c.token_ids for c in greedy] == reference,
        "vllm": [chat.tok.decode([t for t in c.token_ids if t not in stops]) for c in greedy],
        "transformers": [chat.tok.decode([t for t in r if t not in stops]) for r in reference],
        "stopped": sum(not c.truncated for c in greedy),
        "greedy_logprob_max_abs_diff": gap(greedy, 1.0),
        "sampled_logprob_max_abs_diff": gap(sampled, args.temperature),
        "sampled_differs_from_greedy": [c.token_ids for c in sampled] != reference,
    }), flush=True)


if __name__ == "__main__":
    main()
