"""Write the tiny recipes' bundled corpus (JSONL, one {"text": ...} per line).

    python tools/generate_tiny_data.py [--out recipes/tiny/data/corpus.jsonl] [--docs 4000]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.data.synthetic import tiny_corpus  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="recipes/tiny/data/corpus.jsonl")
    parser.add_argument("--docs", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w") as f:
        for text in tiny_corpus(args.docs, args.seed):
            f.write(json.dumps({"text": text}) + "\n")
    print(f"wrote {args.docs} documents to {out}")


if __name__ == "__main__":
    main()
