"""IFEval benchmark cases written from the benchmark's definitions (its instruction checks and its
strict and loose evaluation): a pass and a fail for every instruction, the relation edges, how
words, sentences, paragraphs and capital words are counted, the loose variants, the four
accuracies on a hand-scored set, each DataError, and hostile responses that must stay fast."""

from __future__ import annotations

import time

import pytest

from engine.errors import DataError
from engine.evaluation.ifeval import (
    follows, follows_loose, loose_variants, score_ifeval_benchmark,
)
from engine.evaluation.ifeval_checks import INSTRUCTIONS
from engine.evaluation.text_units import count_sentences, word_tokens

BENCHMARK_IDS = {
    "keywords:existence", "keywords:frequency", "keywords:forbidden_words",
    "keywords:letter_frequency", "language:response_language",
    "length_constraints:number_sentences", "length_constraints:number_paragraphs",
    "length_constraints:number_words", "length_constraints:nth_paragraph_first_word",
    "detectable_content:number_placeholders", "detectable_content:postscript",
    "detectable_format:number_bullet_lists", "detectable_format:constrained_response",
    "detectable_format:number_highlighted_sections", "detectable_format:multiple_sections",
    "detectable_format:json_format", "detectable_format:title", "combination:two_responses",
    "combination:repeat_prompt", "startend:end_checker", "change_case:capital_word_frequency",
    "change_case:english_capital", "change_case:english_lowercase", "punctuation:no_comma",
    "startend:quotation",
}

ENGLISH = "The weather today is lovely, and we are going for a long walk in the park."
GERMAN = "Das Wetter ist heute sehr schön, und wir gehen im Park lange spazieren."
LOWERCASE_ENGLISH = "the weather today is lovely and we are going for a long walk in the park."

# (instruction id, kwargs, response, followed strictly)
CASES = [
    # Keywords: case-insensitive, anywhere, inside words too; literal text.
    ("keywords:existence", {"keywords": ["river", "Mona Lisa"]},
     "The RIVER runs past the mona lisa.", True),
    ("keywords:existence", {"keywords": ["river"]}, "Riverside walks.", True),
    ("keywords:existence", {"keywords": ["river", "lake"]}, "A river.", False),
    ("keywords:existence", {"keywords": ["a.b"]}, "axb", False),
    # Frequency: non-overlapping occurrences, case-insensitive, inside words too.
    ("keywords:frequency", {"keyword": "war", "frequency": 2, "relation": "at least"},
     "War and WAR.", True),
    ("keywords:frequency", {"keyword": "war", "frequency": 2, "relation": "at least"},
     "Warfare is war.", True),
    ("keywords:frequency", {"keyword": "war", "frequency": 2, "relation": "at least"},
     "Peace, then war.", False),
    ("keywords:frequency", {"keyword": "  keyword ", "frequency": 4, "relation": "less than"},
     "keyword, Keyword, KEYWORD", True),
    # Forbidden words: between word boundaries only.
    ("keywords:forbidden_words", {"forbidden_words": ["rock"]}, "We rocked all night.", True),
    ("keywords:forbidden_words", {"forbidden_words": ["roll", "rock"]}, "Rock on.", False),
    # Letters: counted in the lowercased response; any single character.
    ("keywords:letter_frequency", {"letter": "t", "let_frequency": 2, "let_relation": "less than"},
     "Tea", True),
    ("keywords:letter_frequency", {"letter": "t", "let_frequency": 2, "let_relation": "less than"},
     "Tot", False),
    ("keywords:letter_frequency", {"letter": "#", "let_frequency": 2, "let_relation": "at least"},
     "#one #two", True),
    # Language: langdetect; a text it cannot read counts as followed.
    ("language:response_language", {"language": "en"}, ENGLISH, True),
    ("language:response_language", {"language": "de"}, GERMAN, True),
    ("language:response_language", {"language": "en"}, GERMAN, False),
    ("language:response_language", {"language": "en"}, "12345 !!! 678", True),
    ("length_constraints:number_sentences", {"num_sentences": 3, "relation": "less than"},
     "One. Two!", True),
    ("length_constraints:number_sentences", {"num_sentences": 3, "relation": "less than"},
     "One. Two! Three?", False),
    # Paragraphs between *** dividers: blank first or last parts are not paragraphs; a blank
    # inner one fails.
    ("length_constraints:number_paragraphs", {"num_paragraphs": 3}, "a\n***\nb\n***\nc", True),
    ("length_constraints:number_paragraphs", {"num_paragraphs": 3},
     "***\na\n***\nb\n***\nc\n***", True),
    ("length_constraints:number_paragraphs", {"num_paragraphs": 3}, "a\n***\n\n***\nb", False),
    ("length_constraints:number_paragraphs", {"num_paragraphs": 3}, "a *** b", False),
    # Words are runs of word characters.
    ("length_constraints:number_words", {"num_words": 3, "relation": "less than"},
     "one two", True),
    ("length_constraints:number_words", {"num_words": 3, "relation": "less than"},
     "one, two-three", False),
    ("length_constraints:number_words", {"num_words": 3, "relation": "at least"},
     "don't stop", True),
    # Paragraphs split at \n\n; the nth part among all parts; its first word cut at . , ? ! ' "
    ("length_constraints:nth_paragraph_first_word",
     {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "summary"},
     "Intro text.\n\n\"Summary, it was good.", True),
    ("length_constraints:nth_paragraph_first_word",
     {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "summary"},
     "Intro text.\n\nSummary: it was good.", False),
    ("length_constraints:nth_paragraph_first_word",
     {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "b"}, "a\n\n\n\nb", False),
    ("length_constraints:nth_paragraph_first_word",
     {"num_paragraphs": 2, "nth_paragraph": 1, "first_word": "a"}, "a\n\nb\n\nc", False),
    # Placeholders: [...] within one line.
    ("detectable_content:number_placeholders", {"num_placeholders": 2},
     "Dear [name], see you at [address].", True),
    ("detectable_content:number_placeholders", {"num_placeholders": 2}, "[a\nb] [c]", False),
    # Postscripts: P.S. and P.P.S may have a space after a period, anywhere, any case.
    ("detectable_content:postscript", {"postscript_marker": "P.S."}, "Hi.\nP. S. See you.",
     True),
    ("detectable_content:postscript", {"postscript_marker": "P.S."}, "Hi. PS see you.", False),
    ("detectable_content:postscript", {"postscript_marker": "P.P.S"}, "Text.\np.p.s more", True),
    ("detectable_content:postscript", {"postscript_marker": "P.P.S"}, "Text.\nP.S. more",
     False),
    ("detectable_content:postscript", {"postscript_marker": "Note:"}, "x\nNOTE: y", True),
    # Bullets: lines starting with `*` (not `**`) or `-`, exactly.
    ("detectable_format:number_bullet_lists", {"num_bullets": 2}, "* one\n- two", True),
    ("detectable_format:number_bullet_lists", {"num_bullets": 2},
     "Intro\n  * one\n**bold**\n-2 degrees", True),
    ("detectable_format:number_bullet_lists", {"num_bullets": 2}, "  - one\n\t- two", True),
    ("detectable_format:number_bullet_lists", {"num_bullets": 2}, "* one\n* two\n* three",
     False),
    ("detectable_format:constrained_response", {}, "Well. My answer is maybe.", True),
    ("detectable_format:constrained_response", {}, "my answer is yes.", False),
    # Highlights: *x* on one line, plus **x** counted again; blank ones do not count.
    ("detectable_format:number_highlighted_sections", {"num_highlights": 2},
     "*one* and *two*", True),
    ("detectable_format:number_highlighted_sections", {"num_highlights": 2},
     "**bold** text", False),
    ("detectable_format:number_highlighted_sections", {"num_highlights": 1},
     "* * and *\nx*", False),
    # Sections: the splitter (case-sensitive) then digits.
    ("detectable_format:multiple_sections", {"section_spliter": "SECTION", "num_sections": 2},
     "SECTION 1\nHello\nSECTION 2\nBye", True),
    ("detectable_format:multiple_sections", {"section_spliter": "SECTION", "num_sections": 2},
     "Section 1\nHello\nSection 2\nBye", False),
    ("detectable_format:json_format", {}, '```json\n{"a": [1, 2]}\n```', True),
    ("detectable_format:json_format", {}, "{'a': 1}", False),
    ("detectable_format:title", {}, "<<My Title>>\nBody.", True),
    ("detectable_format:title", {}, "<< >> and <<\nx>>", False),
    ("combination:two_responses", {}, "First answer.\n******\nSecond answer.", True),
    ("combination:two_responses", {}, "Same.\n******\n Same. ", False),
    ("combination:two_responses", {}, "a\n******\n\n******\nb", False),
    ("combination:repeat_prompt", {"prompt_to_repeat": "Write a poem."},
     "  write a POEM. Roses are red.", True),
    ("combination:repeat_prompt", {"prompt_to_repeat": "Write a poem."},
     "Sure! Write a poem.", False),
    ("startend:end_checker", {"end_phrase": "Any other questions?"},
     'Done.\n"any other questions?"', True),
    ("startend:end_checker", {"end_phrase": "Any other questions?"},
     "Any other questions? Thanks.", False),
    # Capital words: tokens whose letters are all uppercase, "I" included.
    ("change_case:capital_word_frequency", {"capital_frequency": 2, "capital_relation": "at least"},
     "I LOVE it", True),
    ("change_case:capital_word_frequency", {"capital_frequency": 2, "capital_relation": "at least"},
     "Love it, NASA", False),
    ("change_case:capital_word_frequency",
     {"capital_frequency": 2, "capital_relation": "less than"}, "I'm fine", True),
    ("change_case:capital_word_frequency",
     {"capital_frequency": 2, "capital_relation": "less than"}, "DON'T", False),
    ("change_case:english_capital", {}, ENGLISH.upper(), True),
    ("change_case:english_capital", {}, ENGLISH, False),
    ("change_case:english_capital", {}, GERMAN.upper(), False),
    ("change_case:english_lowercase", {}, LOWERCASE_ENGLISH, True),
    ("change_case:english_lowercase", {}, ENGLISH, False),
    ("change_case:english_lowercase", {}, GERMAN.lower(), False),
    ("punctuation:no_comma", {}, "No commas here.", True),
    ("punctuation:no_comma", {}, "One, two", False),
    ("startend:quotation", {}, '  "Quoted."\n', True),
    ("startend:quotation", {}, '"', False),
    ("startend:quotation", {}, 'Not "quoted"', False),
]


def test_the_benchmarks_instruction_ids_and_only_those():
    assert set(INSTRUCTIONS) == BENCHMARK_IDS


def test_every_instruction_has_a_passing_and_a_failing_case():
    outcomes = {(instruction_id, passes) for instruction_id, _, _, passes in CASES}
    assert outcomes == {(i, passes) for i in BENCHMARK_IDS for passes in (True, False)}


@pytest.mark.parametrize("instruction_id, kwargs, response, passes", CASES)
def test_instruction(instruction_id, kwargs, response, passes):
    assert follows(instruction_id, kwargs, response, "the prompt") is passes


@pytest.mark.parametrize("instruction_id", sorted(BENCHMARK_IDS))
def test_a_blank_response_follows_nothing(instruction_id):
    kwargs = HOSTILE_KWARGS[instruction_id]
    assert follows(instruction_id, kwargs, " \n\t ", "") is False
    assert follows_loose(instruction_id, kwargs, " \n\t ", "") is False


# Relations: "less than" is count < N, "at least" is count >= N.

COUNTED = [  # (instruction id, kwargs less the threshold and relation, a response with 3)
    ("keywords:frequency", {"keyword": "cat"}, "Cat, cat and cat.", "frequency", "relation"),
    ("keywords:letter_frequency", {"letter": "z"}, "Zz z", "let_frequency", "let_relation"),
    ("length_constraints:number_sentences", {}, "One. Two? Three!", "num_sentences",
     "relation"),
    ("length_constraints:number_words", {}, "one two three", "num_words", "relation"),
    ("change_case:capital_word_frequency", {}, "A BIG CAT", "capital_frequency",
     "capital_relation"),
]


@pytest.mark.parametrize("threshold, relation, passes", [
    (3, "less than", False), (4, "less than", True), (2, "less than", False),
    (3, "at least", True), (4, "at least", False), (2, "at least", True),
    (0, "less than", False), (0, "at least", True),
])
@pytest.mark.parametrize("instruction_id, kwargs, response, count_name, relation_name", COUNTED)
def test_relations(instruction_id, kwargs, response, count_name, relation_name, threshold,
                   relation, passes):
    arguments = {**kwargs, count_name: threshold, relation_name: relation}
    assert follows(instruction_id, arguments, response, "") is passes


@pytest.mark.parametrize("minimum, count_name, instruction_id, response", [
    (3, "num_placeholders", "detectable_content:number_placeholders", "[a] [b] [c]"),
    (3, "num_highlights", "detectable_format:number_highlighted_sections", "*a* *b* **c**"),
])
def test_minimums_are_at_least(minimum, count_name, instruction_id, response):
    assert follows(instruction_id, {count_name: minimum}, response, "")
    assert not follows(instruction_id, {count_name: minimum + 1}, response, "")


def test_sections_are_at_least_and_bullets_and_paragraphs_exact():
    sections = "Section 1 a Section 2 b Section 3 c"
    assert follows("detectable_format:multiple_sections",
                   {"section_spliter": "Section", "num_sections": 2}, sections, "")
    assert not follows("detectable_format:multiple_sections",
                       {"section_spliter": "Section", "num_sections": 4}, sections, "")
    bullets = "* a\n* b\n* c"
    assert [follows("detectable_format:number_bullet_lists", {"num_bullets": n}, bullets, "")
            for n in (2, 3, 4)] == [False, True, False]
    paragraphs = "a\n***\nb\n***\nc"
    assert [follows("length_constraints:number_paragraphs", {"num_paragraphs": n}, paragraphs,
                    "") for n in (2, 3, 4)] == [False, True, False]


# How the benchmark counts.

@pytest.mark.parametrize("text, sentences", [
    ("", 0),
    ("   \n ", 0),
    ("No end mark", 1),
    ("Hello world. How are you? I am fine!", 3),
    ("lowercase follows. it still counts", 2),
    ("Title line\n\nBody without a period", 1),
    ('He said "Stop." Then he left.', 2),
    ("(An aside.) Then more.", 2),
    ("Mr. Smith met Dr. Jones.", 1),
    ("It is good, e.g. cheap and U.S. made.", 1),
    ("J. Smith wrote it.", 1),
    ("Costs rose in 2023. the end", 1),
    ("Costs rose in 2023. The end", 2),
    ("1. First\n2. Second", 3),
    ("Wait... what", 1),
    ("Wait... What now?", 2),
    ("**Bold.** Next", 2),
    ("Really?! Yes.", 2),
    ("It is **done.**", 2),
    ("Really?!", 2),
    ('She said "Yes."', 1),
    ("Pi is 3.14 and e is 2.72 here.", 1),
])
def test_sentences_as_the_benchmarks_splitter_counts_them(text, sentences):
    assert count_sentences(text) == sentences


@pytest.mark.parametrize("text, tokens", [
    ("I'm HAPPY, DON'T you think?", ["I", "'m", "HAPPY", "DO", "N'T", "you", "think"]),
    ("AT&T and NASA/ESA (USA)", ["AT", "T", "and", "NASA/ESA", "USA"]),
    ("CANNOT stop -- WELL-KNOWN", ["CAN", "NOT", "stop", "WELL-KNOWN"]),
    ("x:Y 10:30 a,B 1,000", ["x", "Y", "10:30", "a", "B", "1,000"]),
    ("“HELLO” WAIT...WHAT U.S.A.", ["HELLO", "WAIT", "WHAT", "U.S.A"]),
])
def test_capital_words_are_counted_over_the_benchmarks_tokens(text, tokens):
    assert word_tokens(text) == tokens


def test_capital_word_count_includes_i_and_contraction_parts():
    kwargs = {"capital_frequency": 4, "capital_relation": "at least"}
    assert follows("change_case:capital_word_frequency", kwargs, "I'M SURE I'll go", "")
    assert not follows("change_case:capital_word_frequency", kwargs, "I'm SURE I'll go", "")


def test_lowercase_and_capital_need_cased_letters():
    assert not follows("change_case:english_lowercase", {}, "12345 !!!", "")
    assert not follows("change_case:english_capital", {}, "12345 !!!", "")


def test_language_detection_is_deterministic():
    mixed = "Ciao! Hello, bonjour, hola: una frase corta."
    outcomes = {follows("language:response_language", {"language": "it"}, mixed, "")
                for _ in range(20)}
    assert len(outcomes) == 1


def test_json_accepts_what_pythons_parser_accepts_and_fences():
    for text in ('"just a string"', "[1, 2]", "```\n{}\n```", "```JSON {\"a\": 1}```", "NaN"):
        assert follows("detectable_format:json_format", {}, text, ""), text
    for text in ("```python\n{}\n```", "{} trailing", "[" * 100_000):
        assert not follows("detectable_format:json_format", {}, text, ""), text[:20]


def test_title_spans_from_the_first_open_to_the_last_close_on_a_line():
    assert follows("detectable_format:title", {}, "<<>> and <<>>", "")  # ">> and <<" inside
    assert not follows("detectable_format:title", {}, "<<>>>", "")


def test_none_kwargs_are_dropped():
    kwargs = {"num_words": None, "relation": None, "keywords": None}
    assert follows("punctuation:no_comma", kwargs, "No comma", "")
    assert follows("keywords:existence", {"keywords": ["cat"], "language": None}, "A cat", "")


# Loose: the check passes on any of the benchmark's eight variants.

def test_loose_variants_are_the_benchmarks_eight_in_its_order():
    response = "Sure:\n*a* b\nEnd **now**"
    assert loose_variants(response) == [
        response,
        "Sure:\na b\nEnd now",
        "*a* b\nEnd **now**",
        "Sure:\n*a* b",
        "*a* b",
        "a b\nEnd now",
        "Sure:\na b",
        "a b",
    ]


def test_loose_variants_strip_what_is_left_after_removing_lines():
    assert loose_variants("Sure:\n  a\nb  ") == [
        "Sure:\n  a\nb  ", "Sure:\n  a\nb  ", "a\nb", "Sure:\n  a", "a", "a\nb", "Sure:\n  a", "a"]


def test_loose_variants_of_one_line():
    assert loose_variants(" *x* ") == [" *x* ", " x ", "", "", "", "", "", ""]


def test_a_lead_in_line_fails_strict_and_passes_loose():
    response = "Sure, here it is:\n" + LOWERCASE_ENGLISH
    assert not follows("change_case:english_lowercase", {}, response, "")
    assert follows_loose("change_case:english_lowercase", {}, response, "")
    assert not follows("punctuation:no_comma", {}, response, "")
    assert follows_loose("punctuation:no_comma", {}, response, "")


def test_markdown_stars_fail_strict_and_pass_loose():
    response = '**"Quoted answer."**'
    assert not follows("startend:quotation", {}, response, "")
    assert follows_loose("startend:quotation", {}, response, "")


def test_a_trailing_line_fails_strict_and_passes_loose():
    response = "Done.\nIs there anything else I can help with?\n(42 words)"
    kwargs = {"end_phrase": "Is there anything else I can help with?"}
    assert not follows("startend:end_checker", kwargs, response, "")
    assert follows_loose("startend:end_checker", kwargs, response, "")


def test_loose_does_not_rescue_what_no_variant_follows():
    response = "Sure:\nSome Capitals\nHere"
    assert not follows_loose("change_case:english_lowercase", {}, response, "")
    assert not follows_loose("keywords:existence", {"keywords": ["banana"]}, response, "")


def test_what_strict_follows_loose_follows():
    response = "* a\n* b\nLast line"
    assert follows("detectable_format:number_bullet_lists", {"num_bullets": 2}, response, "")
    assert follows_loose("detectable_format:number_bullet_lists", {"num_bullets": 2},
                         response, "")


# The four accuracies on a hand-scored set.

ROWS = [
    {"key": 1, "prompt": "Count.",  # both followed, strict and loose
     "instruction_id_list": ["punctuation:no_comma", "length_constraints:number_words"],
     "kwargs": [{}, {"relation": "at least", "num_words": 3}]},
    {"key": 2, "prompt": "Lowercase.",  # fails strict for the capital S; loose drops line 1
     "instruction_id_list": ["change_case:english_lowercase"], "kwargs": [{}]},
    {"key": 3, "prompt": "Quote.",  # quotation fails strict for the stars; no_comma passes
     "instruction_id_list": ["startend:quotation", "punctuation:no_comma"],
     "kwargs": [{}, {"num_words": None}]},
    {"key": 4, "prompt": "Title, banana.",  # title passes; the keyword fails in every variant
     "instruction_id_list": ["detectable_format:title", "keywords:existence"],
     "kwargs": [{}, {"keywords": ["banana"]}]},
    {"key": 5, "prompt": "Bullets.",  # all three followed
     "instruction_id_list": ["detectable_format:number_bullet_lists",
                             "keywords:forbidden_words", "startend:end_checker"],
     "kwargs": [{"num_bullets": 2}, {"forbidden_words": ["bad"]}, {"end_phrase": "Bye."}]},
]
RESPONSES = [
    "One two three four",
    "Sure here it is:\n" + LOWERCASE_ENGLISH,
    '**"Hello there"**',
    "<<Fruit>>\nApples only.",
    "* good\n* fine\nBye.",
]


def test_the_four_accuracies_on_a_hand_scored_set():
    result = score_ifeval_benchmark(ROWS, RESPONSES)
    # Instructions followed, strict: 2 + 0 + 1 + 1 + 3 = 7 of 10; loose: 2 + 1 + 2 + 1 + 3 = 9.
    assert result.instruction_strict == pytest.approx(7 / 10)
    assert result.instruction_loose == pytest.approx(9 / 10)
    # Prompts with every instruction followed, strict: rows 1 and 5; loose: all but row 4.
    assert result.prompt_strict == pytest.approx(2 / 5)
    assert result.prompt_loose == pytest.approx(4 / 5)
    assert [example["key"] for example in result.per_example] == [1, 2, 3, 4, 5]
    assert [example["prompt_loose"] for example in result.per_example] == [
        True, True, True, False, True]


def test_per_example_records_every_outcome():
    example = score_ifeval_benchmark(ROWS, RESPONSES).per_example[2]
    assert example == {
        "key": 3, "instruction_id_list": ["startend:quotation", "punctuation:no_comma"],
        "strict": [False, True], "loose": [True, True],
        "prompt_strict": False, "prompt_loose": True,
    }


def test_the_accuracies_agree_with_follows_and_follows_loose():
    result = score_ifeval_benchmark(ROWS, RESPONSES)
    for row, response, example in zip(ROWS, RESPONSES, result.per_example):
        pairs = list(zip(row["instruction_id_list"], row["kwargs"]))
        assert example["strict"] == [follows(i, k, response, row["prompt"]) for i, k in pairs]
        assert example["loose"] == [follows_loose(i, k, response, row["prompt"])
                                    for i, k in pairs]


# DataError: the message names the row key, the instruction id and the problem.

@pytest.mark.parametrize("instruction_id, kwargs, problem", [
    ("keywords:nonexistent", {}, "not one of the benchmark's 25 instruction ids"),
    ("detectable_format:rephrase", {}, "not one of the benchmark's 25"),
    ("keywords:existence", {"keywords": None}, r"missing argument\(s\) \['keywords'\]"),
    ("keywords:existence", {}, "missing argument"),
    ("punctuation:no_comma", {"num_words": 3}, r"unexpected argument\(s\) \['num_words'\]"),
    ("length_constraints:number_words", {"num_words": 3, "relation": "at most"},
     "relation='at most' must be one of"),
    ("length_constraints:number_words", {"num_words": -1, "relation": "at least"},
     "num_words=-1 must be a whole number >= 0"),
    ("length_constraints:number_words", {"num_words": True, "relation": "at least"},
     "num_words=True must be a whole number"),
    ("length_constraints:number_words", {"num_words": "3", "relation": "at least"},
     "num_words='3' must be a whole number"),
    ("length_constraints:nth_paragraph_first_word",
     {"num_paragraphs": 2, "nth_paragraph": 3, "first_word": "a"}, "past num_paragraphs"),
    ("length_constraints:nth_paragraph_first_word",
     {"num_paragraphs": 2, "nth_paragraph": 0, "first_word": "a"}, "nth_paragraph=0"),
    ("keywords:existence", {"keywords": []}, "keywords=\\[\\] must be a non-empty list"),
    ("keywords:existence", {"keywords": ["cat", "  "]}, "non-blank texts"),
    ("keywords:existence", {"keywords": "cat"}, "must be a non-empty list"),
    ("keywords:frequency", {"keyword": " ", "frequency": 1, "relation": "at least"},
     "keyword=' ' must be non-blank text"),
    ("keywords:letter_frequency", {"letter": "ab", "let_frequency": 1, "let_relation": "at least"},
     "letter='ab' must be a single non-blank character"),
    ("language:response_language", {"language": "klingon"}, "langdetect's language codes"),
    ("combination:repeat_prompt", {"prompt_to_repeat": ""}, "prompt_to_repeat='' must be"),
    ("keywords:existence", ["cat"], "kwargs must be an object"),
    ("punctuation:no_comma", {1: 2, "x": 3}, r"unexpected argument\(s\) \[1, 'x'\]"),
])
def test_unusable_kwargs_raise_data_error(instruction_id, kwargs, problem):
    with pytest.raises(DataError, match=problem):
        follows(instruction_id, kwargs, "A response.", "")
    with pytest.raises(DataError, match=problem):
        follows_loose(instruction_id, kwargs, "A response.", "")
    row = {"key": 1005, "prompt": "p", "instruction_id_list": [instruction_id],
           "kwargs": [kwargs]}
    with pytest.raises(DataError) as raised:
        score_ifeval_benchmark([row], ["A response."])
    message = str(raised.value)
    assert "1005" in message and repr(instruction_id) in message


def test_an_instruction_id_that_is_not_text_is_a_data_error():
    with pytest.raises(DataError, match=r"instruction \['keywords:existence'\]: not one of"):
        follows(["keywords:existence"], {}, "text", "")


def test_a_bad_instruction_in_a_later_position_names_it():
    row = {**ROWS[0], "instruction_id_list": ["punctuation:no_comma", "length:bogus"]}
    with pytest.raises(DataError, match=r"IFEval row key 1: instruction 'length:bogus'"):
        score_ifeval_benchmark([row], ["text"])


@pytest.mark.parametrize("rows, responses, problem", [
    (ROWS, RESPONSES[:4], "5 rows but 4 responses"),
    ([], [], "no rows"),
    (["not a row"], ["x"], "row 0: must be an object"),
    ([{"key": 7, "prompt": "p", "instruction_id_list": ["punctuation:no_comma"]}], ["x"],
     "key 7: missing field 'kwargs'"),
    ([{"prompt": "p", "instruction_id_list": [], "kwargs": []}], ["x"],
     "missing field 'key'"),
    ([{"key": 7, "prompt": "p", "instruction_id_list": [], "kwargs": []}], ["x"],
     "key 7: instruction_id_list must be a non-empty list"),
    ([{"key": 7, "prompt": "p", "instruction_id_list": ["punctuation:no_comma"],
       "kwargs": [{}, {}]}], ["x"], "key 7: kwargs must be a list as long"),
    ([ROWS[0]], [None], "key 1: the response must be text"),
])
def test_unusable_rows_raise_data_error(rows, responses, problem):
    with pytest.raises(DataError, match=problem):
        score_ifeval_benchmark(rows, responses)


# Hostile responses: every check returns a bool within a second, strict and loose.

MEGABYTE = 1_000_000
HOSTILE = {
    "prose": "The cat sat. Did it? NASA said yes, [name]! *Mr.* J. 3. " * (MEGABYTE // 56),
    "markers": "[<<*{\"-" * (MEGABYTE // 7),
    "open brackets by line": "[[[[[[[[[\n" * (MEGABYTE // 10),
    # Lines and stars: eight different loose variants, each a megabyte.
    "stars by line": "*\n **\n- *x* **y**\n***\n" * (MEGABYTE // 24),
    "blank lines": "\n \n" * (MEGABYTE // 3),
    "one capital": "A" * MEGABYTE,
    "periods": ". p. J. 1. ... " * (MEGABYTE // 15),
    "marks": "?!.)*" * (MEGABYTE // 5),
    "lone surrogates": "\ud800 the cat \udfff sat on the \udbff mat. " * (MEGABYTE // 34),
    "deep brackets": "[" * (MEGABYTE // 2) + "]" * (MEGABYTE // 2),
    "digits": "9" * MEGABYTE,
    "sections and postscripts": "Section 1 p. s. p.p.s P.S. ****** " * (MEGABYTE // 34),
    "contractions": "I'M DON'T CANNOT AT&T x:Y " * (MEGABYTE // 26),
}
# Loose reads up to eight variants with the same checks: timed on the costliest input for it,
# and on the surrogates.
HOSTILE_LOOSE = ("stars by line", "lone surrogates")

HOSTILE_KWARGS = {
    "keywords:existence": {"keywords": ["cat", "aaaaaaab"]},
    "keywords:frequency": {"keyword": "aa", "frequency": 3, "relation": "at least"},
    "keywords:forbidden_words": {"forbidden_words": ["dog", "aaaab"]},
    "keywords:letter_frequency": {"letter": "a", "let_frequency": 3, "let_relation": "less than"},
    "language:response_language": {"language": "en"},
    "length_constraints:number_sentences": {"num_sentences": 3, "relation": "less than"},
    "length_constraints:number_paragraphs": {"num_paragraphs": 3},
    "length_constraints:number_words": {"num_words": 3, "relation": "at least"},
    "length_constraints:nth_paragraph_first_word":
        {"num_paragraphs": 3, "nth_paragraph": 2, "first_word": "the"},
    "detectable_content:number_placeholders": {"num_placeholders": 3},
    "detectable_content:postscript": {"postscript_marker": "P.P.S"},
    "detectable_format:number_bullet_lists": {"num_bullets": 3},
    "detectable_format:constrained_response": {},
    "detectable_format:number_highlighted_sections": {"num_highlights": 3},
    "detectable_format:multiple_sections": {"section_spliter": "Section", "num_sections": 3},
    "detectable_format:json_format": {},
    "detectable_format:title": {},
    "combination:two_responses": {},
    "combination:repeat_prompt": {"prompt_to_repeat": "aaaa"},
    "startend:end_checker": {"end_phrase": "The end."},
    "change_case:capital_word_frequency": {"capital_frequency": 3, "capital_relation": "at least"},
    "change_case:english_capital": {},
    "change_case:english_lowercase": {},
    "punctuation:no_comma": {},
    "startend:quotation": {},
}


@pytest.fixture(scope="module")
def language_profiles():
    """langdetect loads its profiles once, on first use; load them before timing anything."""
    follows("language:response_language", {"language": "en"}, ENGLISH, "")


def _fast_and_boolean(check, instruction_id, response, kind):
    start = time.perf_counter()
    assert check(instruction_id, HOSTILE_KWARGS[instruction_id], response, "") in (True, False)
    assert time.perf_counter() - start < 1.0, (kind, check.__name__)


@pytest.mark.parametrize("instruction_id", sorted(BENCHMARK_IDS))
def test_hostile_responses_are_fast(instruction_id, language_profiles):
    for kind, response in HOSTILE.items():
        _fast_and_boolean(follows, instruction_id, response, kind)
    for kind in HOSTILE_LOOSE:
        _fast_and_boolean(follows_loose, instruction_id, HOSTILE[kind], kind)


def test_hostile_responses_get_sane_answers():
    assert not follows("detectable_format:json_format", {}, HOSTILE["deep brackets"], "")
    assert follows("detectable_format:json_format", {}, HOSTILE["digits"][:4000], "")
    assert follows("change_case:english_lowercase", {}, HOSTILE["lone surrogates"], "")
    assert follows("keywords:frequency",
                   {"keyword": "cat", "frequency": MEGABYTE // 34, "relation": "at least"},
                   HOSTILE["lone surrogates"], "")
    assert follows("language:response_language", {"language": "en"}, HOSTILE["prose"], "")
    assert count_sentences(HOSTILE["prose"]) > MEGABYTE // 56
    assert not follows("detectable_content:number_placeholders", {"num_placeholders": 1},
                       HOSTILE["open brackets by line"], "")
