"""The tiny recipes' bundled corpus: short documents of arithmetic and templated facts.

Generated deterministically from a seed, so the shipped file can be rebuilt and checked
(`python tools/generate_tiny_data.py`). The regularities (sums, counting, fixed facts) are easy
enough that a sub-million-parameter model visibly learns them in a few hundred CPU steps.
"""

from __future__ import annotations

import random

_FACTS = [
    ("France", "Paris"), ("Italy", "Rome"), ("Spain", "Madrid"), ("Japan", "Tokyo"),
    ("Egypt", "Cairo"), ("Peru", "Lima"), ("Kenya", "Nairobi"), ("Norway", "Oslo"),
    ("Canada", "Ottawa"), ("Chile", "Santiago"), ("Greece", "Athens"), ("India", "New Delhi"),
]
_ANIMALS = [("cat", "meows"), ("dog", "barks"), ("cow", "moos"), ("duck", "quacks"),
            ("lion", "roars"), ("owl", "hoots"), ("horse", "neighs"), ("sheep", "bleats")]


def _sentence(rng: random.Random) -> str:
    kind = rng.randrange(5)
    if kind == 0:
        a, b = rng.randrange(50), rng.randrange(50)
        return f"{a} + {b} = {a + b}."
    if kind == 1:
        a, b = rng.randrange(10), rng.randrange(10)
        return f"{a} times {b} is {a * b}."
    if kind == 2:
        start = rng.randrange(90)
        return "Counting: " + ", ".join(str(start + i) for i in range(5)) + "."
    if kind == 3:
        country, capital = rng.choice(_FACTS)
        return f"The capital of {country} is {capital}."
    animal, sound = rng.choice(_ANIMALS)
    return f"The {animal} {sound}."


def tiny_corpus(num_documents: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(_sentence(rng) for _ in range(rng.randrange(3, 12)))
            for _ in range(num_documents)]


_WORDS = ["cat", "sun", "tree", "blue", "rain", "star", "fish", "moon"]
_SYSTEMS = ["You are a helpful assistant.", "Answer briefly."]


def _chat_turn(rng: random.Random) -> tuple[str, str, str]:
    """(category, question, answer) with a single correct answer."""
    kind = rng.randrange(4)
    if kind == 0:
        a, b = rng.randrange(50), rng.randrange(50)
        return "add", f"What is {a} + {b}?", f"{a} + {b} = {a + b}."
    if kind == 1:
        country, capital = rng.choice(_FACTS)
        return "capital", f"What is the capital of {country}?", \
            f"The capital of {country} is {capital}."
    if kind == 2:
        word, n = rng.choice(_WORDS), rng.randrange(2, 6)
        return "repeat", f"Say {word} {n} times.", " ".join([word] * n)
    start = rng.randrange(90)
    return "count", f"Count from {start} to {start + 4}.", \
        ", ".join(str(start + i) for i in range(5)) + "."


def tiny_chat(num_examples: int, seed: int, exclude: set[str] = frozenset()) -> list[dict]:
    """Chat records in Tülu's format: some with a system turn, some with two exchanges.

    `exclude` holds addition questions that must not end a conversation, so an eval set can
    hold additions out; the other categories are too small to hold anything out (12 capitals,
    32 repeats, 90 counts), so an eval of them measures recall of what was trained.
    """
    rng = random.Random(seed)
    records = []
    while len(records) < num_examples:
        messages = [{"role": "system", "content": rng.choice(_SYSTEMS)}] \
            if rng.random() < 0.3 else []
        for _ in range(2 if rng.random() < 0.25 else 1):
            category, question, answer = _chat_turn(rng)
            messages += [{"role": "user", "content": question},
                         {"role": "assistant", "content": answer}]
        if category == "add" and messages[-2]["content"] in exclude:
            continue
        records.append({"messages": messages, "category": category})
    return records
