"""Write the tiny recipes' bundled data (JSONL):

    python -m tools.generate_tiny_data [--out-dir recipes/tiny/data]

corpus.jsonl      4,000 documents {"text": ...} for recipes/tiny/pretrain.yaml
chat_train.jsonl  4,000 conversations {"messages": [...], "category": ...} for recipes/tiny/sft.yaml
chat_eval.jsonl   200 conversations; a final addition question never occurs in chat_train.jsonl
pref_train.jsonl  2,000 preference pairs (correct vs wrong, brief vs signed-off) for
                  recipes/tiny/dpo.yaml
pref_eval.jsonl   200 held-out pairs; their additions occur in no training file, their brevity
                  pairs ask kinds of question that the training pairs' brevity pairs do not
rlvr_train.jsonl  600 RLVR prompts for recipes/tiny/rlvr.yaml: counting (spans of 3 and 4, GSM8K
                  verifier) and capitals / repeats under "Be brief." (IF verifier, end check)
rlvr_eval.jsonl   54 held-out RLVR prompts counting from starts that no training prompt has:
                  36 plainly, 18 under "Be brief."
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from engine.data.synthetic import tiny_chat, tiny_corpus, tiny_preferences, tiny_rlvr_prompts


def _write(path: Path, records: list[dict]) -> None:
    with path.open("w") as f:
        for record in records:
            f.write(json.dumps(record) + "\n")
    print(f"wrote {len(records)} records to {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", default="recipes/tiny/data")
    args = parser.parse_args()
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _write(out / "corpus.jsonl", [{"text": t} for t in tiny_corpus(4000, seed=0)])
    train = tiny_chat(4000, seed=1)
    seen = {m["content"] for r in train for m in r["messages"] if m["role"] == "user"}
    _write(out / "chat_train.jsonl", train)
    _write(out / "chat_eval.jsonl", tiny_chat(200, seed=2, exclude=seen))
    pairs = tiny_preferences(2000, seed=3)
    _write(out / "pref_train.jsonl", pairs)
    seen |= {r["prompt"] for r in pairs}
    _write(out / "pref_eval.jsonl", tiny_preferences(200, seed=4, held_out=True, exclude=seen))
    _write(out / "rlvr_train.jsonl", tiny_rlvr_prompts(600, seed=5))
    _write(out / "rlvr_eval.jsonl", tiny_rlvr_prompts(0, seed=6, held_out=True))


if __name__ == "__main__":
    main()
