"""IF verifier cases written from AI2's definitions of the 25 constraint checks (as the reference
words them): a pass and a fail for each, the edges of every quantifier, how a ground truth is
read, each unusable ground truth's message, and hostile answers that must stay fast."""

import inspect
import json
import time

import pytest

from engine.rewards.base import BadGroundTruth
from engine.rewards.ifeval import IF_FUNCTIONS, score_ifeval

REFERENCE_NAMES = {
    "verify_keywords", "verify_keyword_frequency", "validate_forbidden_words",
    "verify_letter_frequency", "validate_response_language", "verify_paragraph_count",
    "validate_word_constraint", "verify_sentence_constraint", "validate_paragraphs",
    "verify_postscript", "validate_placeholders", "verify_bullet_points", "validate_title",
    "validate_choice", "validate_highlighted_sections", "validate_sections",
    "validate_json_format", "validate_repeat_prompt", "validate_two_responses",
    "validate_uppercase", "validate_lowercase", "validate_frequency_capital_words",
    "validate_end", "validate_quotation", "validate_no_commas",
}

ENGLISH = "The weather today is lovely, and we are going for a long walk in the park."
GERMAN = "Das Wetter ist heute sehr schön, und wir gehen im Park lange spazieren."
JAPANESE = "今日はとても良い天気なので、公園を長く散歩します。"
THREE_PARAGRAPHS = "First para.\n\nSecond para.\n\nThird para."
YES_NO = {"options": ["My answer is yes.", "My answer is no."]}

CASES = [  # (func_name, arguments, response, passes)
    ("verify_keywords", {"keyword_list": ["Apple", "pie"]}, "I baked an apple PIE.", True),
    ("verify_keywords", {"keyword_list": ["Apple", "pie"]}, "I baked an apple tart.", False),
    ("verify_keyword_frequency", {"word": "cat", "N": 2}, "The cat saw a Cat.", True),
    ("verify_keyword_frequency", {"word": "cat", "N": 2}, "The cat saw a category.", False),
    ("verify_keyword_frequency", {"word": "cat", "N": 2}, "cat, cat and cat", False),
    ("validate_forbidden_words", {"forbidden_words": ["bad", "evil"]}, "All good here.", True),
    ("validate_forbidden_words", {"forbidden_words": ["bad", "evil"]}, "Not BAD at all.", False),
    ("validate_forbidden_words", {"forbidden_words": ["bad"]}, "A badge.", False),  # substring
    ("verify_letter_frequency", {"letter": "a", "N": 3}, "banana", True),
    ("verify_letter_frequency", {"letter": "a", "N": 3}, "bAnana", False),  # case-sensitive
    ("validate_response_language", {"language": "en"}, ENGLISH, True),
    ("validate_response_language", {"language": "de"}, GERMAN, True),
    ("validate_response_language", {"language": "en"}, GERMAN, False),
    ("validate_response_language", {"language": "en"}, "12345 !!! ...", False),  # no features
    ("verify_paragraph_count", {"N": 3}, "One\n* * *\nTwo\n  * * *  \nThree", True),
    ("verify_paragraph_count", {"N": 1}, "Just one paragraph.", True),
    ("verify_paragraph_count", {"N": 3}, "One\n* * *\n\n* * *\nThree", False),  # an empty one
    ("verify_paragraph_count", {"N": 3}, "One\n* * *\nTwo", False),
    ("verify_paragraph_count", {"N": 2}, "One * * * Two", False),  # a divider is a whole line
    ("verify_sentence_constraint", {"N": 4, "quantifier": "at least"},
     "One. Two? Three! Four", True),
    ("verify_sentence_constraint", {"N": 1, "quantifier": "at most"},
     "Pi is 3.14 or so.", True),  # no whitespace after the inner dot
    ("verify_sentence_constraint", {"N": 2, "quantifier": "at most"},
     "Mr. Smith left. He ran.", False),  # three by the rule: no abbreviation list
    ("verify_sentence_constraint", {"N": 2, "quantifier": "at most"},
     "One. Two. \n", True),  # trailing whitespace starts no sentence
    ("validate_paragraphs", {"N": 3, "first_word": "Second", "i": 2}, THREE_PARAGRAPHS, True),
    ("validate_paragraphs", {"N": 3, "first_word": "Second", "i": 2},
     "First para.\n  \nSecond para.\n\n\n\nThird para.", True),  # blank lines: one break
    ("validate_paragraphs", {"N": 3, "first_word": "Third", "i": 2}, THREE_PARAGRAPHS, False),
    ("validate_paragraphs", {"N": 2, "first_word": "Second", "i": 2}, THREE_PARAGRAPHS, False),
    ("verify_postscript", {"postscript_marker": "P.S."}, "Hi.\n\nP.S. See you soon.", True),
    ("verify_postscript", {"postscript_marker": "P.S."}, "Hi. P.S.  \n", False),
    ("verify_postscript", {"postscript_marker": "P.S."}, "Hi. See you.", False),
    ("validate_placeholders", {"N": 2}, "Dear [name], we ship to [address].", True),
    ("validate_placeholders", {"N": 2}, "Dear [name].", False),
    ("validate_placeholders", {"N": 2}, "A [nested [one] here] and [\n] across lines.", False),
    ("verify_bullet_points", {"N": 2}, "Points:\n* one\n  - two\nend", True),
    ("verify_bullet_points", {"N": 0}, "No bullets at all.", True),
    ("verify_bullet_points", {"N": 2}, "* one\n* two\n* three", False),
    ("validate_title", {}, "<<Poem of Joy>>\nRoses are red.", True),
    ("validate_title", {}, "A poem without a title.", False),
    ("validate_title", {}, "An empty one: <<  >>", False),
    ("validate_title", {}, "<<Split across\nlines>>", False),
    ("validate_choice", YES_NO, "My answer is no.", True),
    ("validate_choice", YES_NO, "My answer is maybe.", False),
    ("validate_highlighted_sections", {"N": 2}, "*one* and *two*", True),
    ("validate_highlighted_sections", {"N": 2}, "**bold** and *italic*", True),
    ("validate_highlighted_sections", {"N": 2}, "only *one* here", False),
    ("validate_highlighted_sections", {"N": 1}, "blank spans * * and ** do not count", False),
    ("validate_sections", {"N": 2, "section_splitter": "Section"},
     "Section 1\nIntro.\nSECTION 2\nBody.", True),
    ("validate_sections", {"N": 2, "section_splitter": "Section"}, "Section1 a section 2 b", True),
    ("validate_sections", {"N": 2, "section_splitter": "Section"},
     "Section 1\nIntro.\nSection two\nBody.", False),
    ("validate_json_format", {}, '{"a": [1, 2.5, null]}', True),
    ("validate_json_format", {}, "  [1, 2]\n", True),
    ("validate_json_format", {}, '{"a": 1,}', False),
    ("validate_json_format", {}, '```json\n{"a": 1}\n```', False),
    ("validate_json_format", {}, "", False),
    ("validate_repeat_prompt", {"original_prompt": "Write a poem."},
     "Write a poem. Roses are red.", True),
    ("validate_repeat_prompt", {"original_prompt": "Write a poem."},
     "Sure! Write a poem.", False),
    ("validate_repeat_prompt", {"original_prompt": "Write a poem."}, "write a poem. Ok", False),
    ("validate_two_responses", {}, "Yes, it is.\n******\nNo, it is not.", True),
    ("validate_two_responses", {}, "Same.\n******\nSame.", False),
    ("validate_two_responses", {}, "A\n******\nB\n******\nC", False),
    ("validate_two_responses", {}, "Only one response.", False),
    ("validate_two_responses", {}, "A lone response\n******\n", False),
    ("validate_uppercase", {}, "HELLO, WORLD 123!", True),
    ("validate_uppercase", {}, "HELLO, World", False),
    ("validate_lowercase", {}, "hello, world 123!", True),
    ("validate_lowercase", {}, "hello, World", False),
    ("validate_frequency_capital_words", {"N": 2, "quantifier": "at least"},
     "The USA and NASA agreed.", True),
    ("validate_frequency_capital_words", {"N": 2, "quantifier": "at least"},
     "The Usa and NASA agreed.", False),
    ("validate_frequency_capital_words", {"N": 1, "quantifier": "at least"},
     "In 2024 we sold 42_000 units.", False),  # a word needs a capital letter
    ("validate_end", {"end_phrase": "Any other questions?"}, "Done. Any other questions?\n", True),
    ("validate_end", {"end_phrase": "Any other questions?"}, "Any other questions? Bye.", False),
    ("validate_quotation", {}, '"Hello there."', True),
    ("validate_quotation", {}, "Hello there.", False),
    ("validate_quotation", {}, '"', False),
    ("validate_quotation", {}, '"Hello there.', False),
    ("validate_no_commas", {}, "No commas here.", True),
    ("validate_no_commas", {}, "One, two.", False),
]


def _score(name, arguments, response):
    return score_ifeval(response, {"func_name": name, **arguments})


def test_the_reference_checks_and_only_those():
    assert set(IF_FUNCTIONS) == REFERENCE_NAMES
    assert IF_FUNCTIONS["validate_no_commas"]("a, b") is False
    assert IF_FUNCTIONS["verify_keywords"]("Red fox", keyword_list=["fox"]) is True


def test_every_check_has_a_passing_and_a_failing_case():
    outcomes = {(name, passes) for name, _, _, passes in CASES}
    outcomes |= {("validate_word_constraint", True), ("validate_word_constraint", False)}
    assert outcomes == {(name, passes) for name in REFERENCE_NAMES for passes in (True, False)}


@pytest.mark.parametrize("name, arguments, response, passes", CASES)
def test_check(name, arguments, response, passes):
    assert _score(name, arguments, response) == float(passes)


def _words(count):
    return " ".join(["word"] * count)


def _sentences(count):
    return " ".join(["It is."] * count)


def _capital_words(count):
    return " ".join(["NASA"] * count + ["and", "Rome", "I2c"])


@pytest.mark.parametrize("n, quantifier, count, passes", [
    (100, "at least", 100, True), (100, "at least", 99, False),
    (100, "at most", 100, True), (100, "at most", 101, False),
    (100, "around", 90, True), (100, "around", 110, True),      # within round(0.1 * 100) = 10
    (100, "around", 89, False), (100, "around", 111, False),
    (5, "around", 4, True), (5, "around", 6, True),             # round(0.5) = 0: at least 1
    (5, "around", 3, False), (5, "around", 7, False),
    (0, "around", 1, True), (0, "around", 2, False),
    (15, "around", 17, True), (15, "around", 18, False),        # round(1.5) = 2
    (25, "around", 27, True), (25, "around", 28, False),        # round(2.5) = 2 (half to even)
])
def test_word_count_quantifiers(n, quantifier, count, passes):
    arguments = {"N": n, "quantifier": quantifier}
    assert _score("validate_word_constraint", arguments, _words(count)) == float(passes)


def test_words_are_separated_by_any_whitespace():
    arguments = {"N": 4, "quantifier": "at most"}
    assert _score("validate_word_constraint", arguments, " one\ttwo\n\nthree  four ") == 1.0
    assert _score("validate_word_constraint", arguments, "one two three four-five six") == 0.0


@pytest.mark.parametrize("n, quantifier, count, passes", [
    (3, "at least", 3, True), (3, "at least", 2, False),
    (3, "at most", 3, True), (3, "at most", 4, False),
    (100, "around", 99, True), (100, "around", 101, True),      # within 1, whatever N
    (100, "around", 98, False), (100, "around", 102, False),
])
def test_sentence_count_quantifiers(n, quantifier, count, passes):
    arguments = {"N": n, "quantifier": quantifier}
    assert _score("verify_sentence_constraint", arguments, _sentences(count)) == float(passes)


@pytest.mark.parametrize("n, quantifier, count, passes", [
    (3, "at least", 3, True), (3, "at least", 2, False),
    (3, "at most", 3, True), (3, "at most", 4, False),
    (20, "around", 18, True), (20, "around", 22, True),         # within round(0.1 * 20) = 2
    (20, "around", 17, False), (20, "around", 23, False),
    (3, "around", 2, True), (3, "around", 4, True),             # at least 1
    (3, "around", 1, False), (3, "around", 5, False),
])
def test_capital_word_quantifiers(n, quantifier, count, passes):
    arguments = {"N": n, "quantifier": quantifier}
    response = _capital_words(count)
    assert _score("validate_frequency_capital_words", arguments, response) == float(passes)


# How a ground truth is read.

def test_a_json_string_a_dict_and_a_one_item_list_are_the_same_constraint():
    constraint = {"func_name": "verify_keywords", "keyword_list": ["fox"]}
    for ground_truth in (json.dumps(constraint), constraint, [constraint],
                         json.dumps([constraint])):
        assert score_ifeval("The quick fox.", ground_truth) == 1.0
        assert score_ifeval("The quick dog.", ground_truth) == 0.0


def test_null_arguments_are_dropped_as_in_the_rlvr_rows():
    row = {"func_name": "validate_lowercase", "N": None, "quantifier": None, "end_phrase": None,
           "keyword_list": None, "word": None, "forbidden_words": None, "letter": None,
           "i": None, "first_word": None, "postscript_marker": None, "options": None,
           "section_splitter": None, "original_prompt": None}
    assert score_ifeval("all lowercase", json.dumps(row)) == 1.0
    assert score_ifeval("Not lowercase", row) == 0.0
    assert row["func_name"] == "validate_lowercase" and len(row) == 14  # left as it was


def test_integral_float_counts_are_integers():
    arguments = {"N": 2.0, "quantifier": "at least"}
    assert _score("validate_word_constraint", arguments, "two words") == 1.0
    assert _score("validate_word_constraint", arguments, "one") == 0.0


def test_language_is_told_from_the_first_5000_characters():
    english = (ENGLISH + " ") * 70
    response = english[:5_000] + JAPANESE * 5_000
    assert _score("validate_response_language", {"language": "en"}, response) == 1.0
    assert _score("validate_response_language", {"language": "ja"}, response) == 0.0


def test_language_detection_is_deterministic():
    ambiguous = "das ist"  # unseeded, langdetect calls this de or lv at random
    scores = {_score("validate_response_language", {"language": "de"}, ambiguous)
              for _ in range(20)}
    assert len(scores) == 1


# Unusable ground truths: one clear message each.

def _keywords(**arguments):
    return {"func_name": "verify_keywords", **arguments}


def _words_truth(n, quantifier="at least"):
    return {"func_name": "validate_word_constraint", "N": n, "quantifier": quantifier}


COUNT_RULE = "must be an integer from 0 to 1,000,000,000"

BAD_TRUTHS = [  # (ground truth, the message, matched as a regular expression)
    ("not json", r"ifeval ground truth: not valid JSON \(Expecting value"),
    ('{"func_name": "validate_title"', r"not valid JSON"),
    ("[" * 100_000, r"not valid JSON"),
    ('{"func_name": "validate_word_constraint", "N": ' + "7" * 50_000 + "}", r"not valid JSON"),
    ('"validate_title"', r"expected a JSON object with func_name, got str 'validate_title'"),
    ("42", r"expected a JSON object with func_name, got int 42"),
    (None, r"expected a JSON object with func_name, got NoneType None"),
    ("[]", r"a list must hold exactly one constraint object, got 0 items"),
    ([{"func_name": "validate_title"}] * 2, r"exactly one constraint object, got 2 items"),
    ({"N": 3}, r"ifeval ground truth: no func_name$"),
    ({"func_name": None}, r"no func_name$"),
    ({"func_name": ["validate_title"]}, r"func_name must be a string, got \['validate_title'\]"),
    ({"func_name": "verify_keyword", "keyword_list": ["a"]},
     r"unknown func_name 'verify_keyword' \(did you mean 'verify_keywords'\?\)$"),
    ({"func_name": "frobnicate"}, r"unknown func_name 'frobnicate'$"),
    ({"func_name": "x" * 1_000_000}, r"unknown func_name 'x{12}\.\.\.x{13}'$"),
    ({"func_name": "validate_title", "N": 3},
     r"validate_title does not take 'N' \(it takes no arguments\)$"),
    (_keywords(keyword_list=["a"], extra=1),
     r"verify_keywords does not take 'extra' \(it takes keyword_list\)$"),
    ({"func_name": "validate_word_constraint", "N": 3},
     r"validate_word_constraint needs quantifier$"),
    ({"func_name": "validate_paragraphs", "N": 3},
     r"validate_paragraphs needs first_word, i$"),
    (_words_truth("3"), r"validate_word_constraint: N " + COUNT_RULE + r", got '3'$"),
    (_words_truth(2.5), r"N " + COUNT_RULE + r", got 2\.5$"),
    (_words_truth(-1), r"N " + COUNT_RULE + r", got -1$"),
    (_words_truth(True), r"N " + COUNT_RULE + r", got True$"),
    (_words_truth(10**12), r"N " + COUNT_RULE + r", got 1000000000000$"),
    (_words_truth(10**50_000), r"N " + COUNT_RULE + r", got an integer of 166097 bits$"),
    (_words_truth(float("nan")), r"N " + COUNT_RULE + r", got nan$"),
    (_words_truth(5, "more than"),
     r"quantifier must be one of 'at least', 'at most', 'around', got 'more than'$"),
    (_words_truth(5, "At least"), r"quantifier must be one of"),
    (_words_truth(5, ["at least"]), r"quantifier must be one of .*, got \['at least'\]$"),
    (_keywords(keyword_list="fox"),
     r"verify_keywords: keyword_list must be a non-empty list of non-blank strings, got 'fox'$"),
    (_keywords(keyword_list=[]), r"keyword_list must be a non-empty list"),
    (_keywords(keyword_list=["fox", " "]), r"keyword_list must be a non-empty list"),
    (_keywords(keyword_list=[1]), r"keyword_list must be a non-empty list"),
    ({"func_name": "validate_choice", "options": "yes, no"}, r"options must be a non-empty list"),
    ({"func_name": "verify_keyword_frequency", "word": "two words", "N": 1},
     r"word must be one word \(a run of letters, digits or _\), got 'two words'$"),
    ({"func_name": "verify_letter_frequency", "letter": "ab", "N": 1},
     r"letter must be a single character, got 'ab'$"),
    ({"func_name": "verify_letter_frequency", "letter": "", "N": 1}, r"a single character"),
    ({"func_name": "validate_response_language", "language": "english"},
     r"language must be a langdetect language code \(af, ar, .*en, .*\), got 'english'$"),
    ({"func_name": "validate_response_language", "language": "zh"},
     r"langdetect language code .*, got 'zh'$"),
    ({"func_name": "validate_paragraphs", "N": 3, "first_word": "", "i": 1},
     r"first_word must be a non-blank string, got ''$"),
    ({"func_name": "validate_paragraphs", "N": 3, "first_word": "So", "i": 0},
     r"i must be an integer from 1 to 1,000,000,000, got 0$"),
    ({"func_name": "validate_paragraphs", "N": 3, "first_word": "So", "i": 4},
     r"validate_paragraphs: i=4 is past the last of N=3 paragraphs$"),
    ({"func_name": "validate_end", "end_phrase": 5},
     r"validate_end: end_phrase must be a non-blank string, got 5$"),
    ({"func_name": "verify_postscript", "postscript_marker": "  "},
     r"postscript_marker must be a non-blank string"),
]


@pytest.mark.parametrize("ground_truth, message", BAD_TRUTHS)
def test_unusable_ground_truth_says_what_is_wrong(ground_truth, message):
    with pytest.raises(BadGroundTruth, match=message) as raised:
        score_ifeval("Any answer.", ground_truth)
    assert str(raised.value).startswith("ifeval ground truth: ")
    assert len(str(raised.value)) < 600


# Hostile answers: every check returns within a second.

HOSTILE = {
    "1 MB of prose": "The cat sat. Did it? NASA said yes, [name]! " * 24_000,
    "1 MB of markers": "[<<*{\"" * 200_000,
    "1 MB of blank lines": "\n \n" * 350_000,
    "1 MB of one letter": "a" * 1_000_000,
    "lone surrogates": "\ud800 odd \udfff text \udbff. " * 2_000,
    "50,000 digits": "9" * 50_000,
    "deep brackets": "[" * 200_000 + "]" * 200_000,
    "deep objects": '{"a": ' * 100_000 + "1" + "}" * 100_000,
}

HOSTILE_ARGUMENTS = {
    "keyword_list": ["cat", "dog"], "word": "cat", "N": 3, "forbidden_words": ["dog"],
    "letter": "a", "language": "en", "quantifier": "around", "first_word": "The", "i": 2,
    "postscript_marker": "P.S.", "options": ["yes", "no"], "section_splitter": "Section",
    "original_prompt": "The cat", "end_phrase": "The end.",
}


@pytest.fixture(scope="module")
def language_profiles():
    """langdetect loads its profiles once, on first use; load them before timing anything."""
    _score("validate_response_language", {"language": "en"}, ENGLISH)


def _hostile_truth(name):
    parameters = list(inspect.signature(IF_FUNCTIONS[name]).parameters)[1:]
    return {"func_name": name, **{p: HOSTILE_ARGUMENTS[p] for p in parameters}}


@pytest.mark.parametrize("name", sorted(REFERENCE_NAMES))
def test_hostile_answers_are_fast(name, language_profiles):
    ground_truth = _hostile_truth(name)
    for kind, response in HOSTILE.items():
        start = time.perf_counter()
        assert score_ifeval(response, ground_truth) in (0.0, 1.0), kind
        assert time.perf_counter() - start < 1.0, kind


def test_hostile_answers_get_sane_scores():
    assert _score("validate_json_format", {}, HOSTILE["50,000 digits"]) == 1.0
    assert _score("validate_json_format", {}, HOSTILE["deep brackets"]) == 0.0  # too deep
    assert _score("validate_lowercase", {}, HOSTILE["lone surrogates"]) == 1.0
    assert _score("verify_keyword_frequency", {"word": "odd", "N": 2_000},
                  HOSTILE["lone surrogates"]) == 1.0
    assert _score("validate_response_language", {"language": "en"},
                  HOSTILE["1 MB of prose"]) == 1.0
