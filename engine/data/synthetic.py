"""The tiny recipes' bundled corpus: short documents of arithmetic and templated facts.

Generated deterministically from a seed, so the shipped file can be rebuilt and checked
(`python tools/generate_tiny_data.py`). The regularities (sums, counting, fixed facts) are easy
enough that a sub-million-parameter model visibly learns them in a few hundred CPU steps.
"""

from __future__ import annotations

import json
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
_BRIEF = "Answer briefly."
_BE_BRIEF = "Be brief."
_SYSTEMS = ["You are a helpful assistant.", _BRIEF, _BE_BRIEF]
# The chat data's flaw, for preference training to remove: under "Answer briefly." every answer
# ends with this sign-off; under "Be brief." half the conversations do (for RLVR to remove: the
# SFT model learns to sign off about half the time there, so sampling finds answers both ways).
_SIGN_OFF = " Hope this helps!"


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
    """Chat records in Tülu's format: some with a system turn, some with two exchanges. Under
    the system turn "Answer briefly." every answer ends with a needless sign-off (the flaw that
    the preference pairs train away); under "Be brief." the answers of half the conversations
    do (the flaw that RLVR's brevity prompts train away).

    `exclude` holds addition questions that must not end a conversation, so an eval set can
    hold additions out; the other categories are too small to hold anything out (12 capitals,
    32 repeats, 90 counts), so an eval of them measures recall of what was trained.
    """
    rng = random.Random(seed)
    records = []
    while len(records) < num_examples:
        system = rng.choice(_SYSTEMS) if rng.random() < 0.3 else None
        messages = [{"role": "system", "content": system}] if system else []
        signs_off = system == _BRIEF or (system == _BE_BRIEF and rng.random() < 0.5)
        sign_off = _SIGN_OFF if signs_off else ""
        for _ in range(2 if rng.random() < 0.25 else 1):
            category, question, answer = _chat_turn(rng)
            messages += [{"role": "user", "content": question},
                         {"role": "assistant", "content": answer + sign_off}]
        if category == "add" and messages[-2]["content"] in exclude:
            continue
        records.append({"messages": messages, "category": category})
    return records


def _preference_turn(rng: random.Random) -> tuple[str, str, str, str]:
    """(category, question, correct answer, wrong answer in the same form)."""
    kind = rng.random()
    if kind < 0.7:
        a, b = rng.randrange(50), rng.randrange(50)
        wrong = a + b + rng.choice([d for d in range(-9, 10) if d])
        return "add", f"What is {a} + {b}?", f"{a} + {b} = {a + b}.", f"{a} + {b} = {wrong}."
    if kind < 0.8:
        (country, capital), (_, other) = rng.sample(_FACTS, 2)
        return "capital", f"What is the capital of {country}?", \
            f"The capital of {country} is {capital}.", f"The capital of {country} is {other}."
    if kind < 0.9:
        word, n = rng.choice(_WORDS), rng.randrange(2, 6)
        return "repeat", f"Say {word} {n} times.", " ".join([word] * n), \
            " ".join([word] * (n + rng.choice([-1, 1])))
    start = rng.randrange(90)
    right = [start + i for i in range(5)]
    wrong = right[:2] + [right[2] + 1] + right[3:]
    return "count", f"Count from {start} to {start + 4}.", \
        ", ".join(map(str, right)) + ".", ", ".join(map(str, wrong)) + "."


def tiny_preferences(num_pairs: int, seed: int, held_out: bool = False,
                     exclude: set[str] = frozenset()) -> list[dict]:
    """Preference pairs in Tülu's format (whole conversations, a `prompt` string). Two kinds:
    - correctness: the chosen answer right, the rejected one wrong in the same form — mostly
      additions, which the tiny SFT model gets wrong;
    - brevity: under "Answer briefly.", the right answer without the chat data's sign-off is
      chosen over the same answer with it; training pairs (`held_out` false) ask additions and
      capitals, held-out pairs repeating and counting, so that the held-out ones measure whether
      the preference carries over to questions of other kinds.
    `exclude` holds addition questions left out (those of the training files, for held-out
    pairs)."""
    rng = random.Random(seed)
    records = []
    while len(records) < num_pairs:
        category, question, right, wrong = _preference_turn(rng)
        if category == "add" and question in exclude:
            continue
        system = rng.random()
        brief = system < 0.4 and (category in ("repeat", "count")) == held_out
        prompt = [{"role": "system", "content": _BRIEF}] if brief else \
            [{"role": "system", "content": _SYSTEMS[0]}] if system > 0.9 else []
        if brief:
            wrong = right + _SIGN_OFF
        prompt.append({"role": "user", "content": question})
        records.append({"prompt": question, "category": category + ("/brief" if brief else ""),
                        "chosen": prompt + [{"role": "assistant", "content": right}],
                        "rejected": prompt + [{"role": "assistant", "content": wrong}]})
    return records


def _counting_row(a: int, span: int) -> dict:
    return {"messages": [{"role": "user", "content": f"Count from {a} to {a + span}."}],
            "ground_truth": str(a + span), "dataset": "gsm8k"}


def _brevity_row(question: str, answer: str) -> dict:
    constraint = {"func_name": "validate_end", "end_phrase": answer}
    return {"messages": [{"role": "system", "content": _BE_BRIEF},
                         {"role": "user", "content": question}],
            "ground_truth": json.dumps(constraint), "dataset": "ifeval"}


def _counting_answer(a: int) -> str:
    return ", ".join(str(a + i) for i in range(5)) + "."


def tiny_rlvr_prompts(num_prompts: int, seed: int, held_out: bool = False) -> list[dict]:
    """RLVR rows in Tülu's format (`messages`, `ground_truth`, `dataset`), two kinds:
    - counting (`gsm8k`: the answer's last number must be b): "Count from a to b." with b − a of
      3 or 4. The chat data only ever counts five numbers, so the tiny SFT model gets the spans
      of 4 right and those of 3 wrong;
    - brevity (`ifeval`, IFEval's end check: the answer must end with the exact right answer):
      a question under the system turn "Be brief.", under which half the chat data's answers
      end with a needless sign-off; the tiny SFT model signs off about half the time there.
    Training rows (`held_out` false, half of each kind, drawn at random) count from starts that
    are not multiples of 5 and ask capitals and repeats under "Be brief."; held-out rows (each
    once, `num_prompts` ignored) count from the multiples of 5, plainly and under "Be brief.",
    so they measure whether what was learnt carries over to new numbers and to a kind of
    question that brevity was never rewarded on."""
    if held_out:
        starts = range(0, 90, 5)
        return [_counting_row(a, span) for a in starts for span in (3, 4)] + \
            [_brevity_row(f"Count from {a} to {a + 4}.", _counting_answer(a)) for a in starts]
    rng = random.Random(seed)
    starts = [a for a in range(90) if a % 5]
    rows = []
    for _ in range(num_prompts):
        if rng.random() < 0.5:
            rows.append(_counting_row(rng.choice(starts), rng.choice((3, 4))))
        elif rng.random() < 0.5:
            country, capital = rng.choice(_FACTS)
            rows.append(_brevity_row(f"What is the capital of {country}?",
                                     f"The capital of {country} is {capital}."))
        else:
            word, n = rng.choice(_WORDS), rng.randrange(2, 6)
            rows.append(_brevity_row(f"Say {word} {n} times.", " ".join([word] * n)))
    return rows
