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
