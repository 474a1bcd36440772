"""Answer chat prompts with a Hugging Face model directory through `transformers`: a check that
an exported model works outside the engine.

    python -m tools.generate_hf --hf DIR [--tokenizer byte|DIR] [--template tulu|llama3|tokenizer]
        [--max-new-tokens 48] "What is the capital of Peru?" ...

Prompts are rendered with the engine's chat template and tokenizer (the tiny recipes' byte
tokenizer has no Hugging Face form), decoded greedily by `transformers`' `generate`, and printed
one answer per line.
"""

from __future__ import annotations

import argparse
import sys

import torch

from engine.cli import run_main
from engine.data.chat_template import ChatFormat
from engine.data.tokenizer import load_tokenizer
from engine.hf.config import read_hf_config


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.generate_hf",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--hf", required=True)
    parser.add_argument("--tokenizer", default="byte")
    parser.add_argument("--template", default="tulu")
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("prompts", nargs="+")
    args = parser.parse_args()
    from transformers import AutoModelForCausalLM

    chat = ChatFormat(args.template, load_tokenizer(args.tokenizer))
    read_hf_config(args.hf)  # a clear error for a directory that holds no model
    model = AutoModelForCausalLM.from_pretrained(args.hf, dtype=torch.float32).eval()
    for prompt in args.prompts:
        ids = chat.prompt_ids([{"role": "user", "content": prompt}])
        with torch.no_grad():
            out = model.generate(torch.tensor([ids]), max_new_tokens=args.max_new_tokens,
                                 do_sample=False, eos_token_id=sorted(chat.stop_ids),
                                 pad_token_id=chat.tok.pad_id)
        answer = [t for t in out[0, len(ids):].tolist() if t not in chat.stop_ids]
        print(f"{prompt} -> {chat.tok.decode(answer).strip()}")


if __name__ == "__main__":
    sys.exit(run_main(main))
