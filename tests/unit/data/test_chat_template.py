"""Chat templates and assistant-only masks against hand-written expectations, per template."""

import numpy as np
import pytest

from engine.errors import ConfigError
from engine.data.chat_template import ChatFormat
from engine.data.tokenizer import ByteTokenizer, load_tokenizer
from tests.util import make_hf_tokenizer, make_sentencepiece

SINGLE = [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]
MULTI = [{"role": "system", "content": "Be brief."},
         {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"},
         {"role": "user", "content": "3*3?"}, {"role": "assistant", "content": "9"}]

# Jinja versions of the two built-in templates, as a tokenizer_config.json would carry them.
TULU_JINJA = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ '<|system|>\n' + message['content'] + '\n' }}"
    "{% elif message['role'] == 'user' %}{{ '<|user|>\n' + message['content'] + '\n' }}"
    "{% elif message['role'] == 'assistant' %}{% if not loop.last %}"
    "{{ '<|assistant|>\n' + message['content'] + eos_token + '\n' }}"
    "{% else %}{{ '<|assistant|>\n' + message['content'] + eos_token }}{% endif %}{% endif %}"
    "{% if loop.last and add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
    "{% endfor %}")
LLAMA3_JINJA = (
    "{% for message in messages %}{% set content = '<|start_header_id|>' + message['role'] + "
    "'<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' %}"
    "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}"
    "{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}"
    "{% endif %}")


def expected(pieces):
    """pieces: (text or special-token name, trainable) -> ids, mask with the byte tokenizer."""
    tok = ByteTokenizer()
    ids, mask = [], []
    for piece, trainable in pieces:
        new = [tok.special[piece]] if piece in tok.special else list(piece.encode())
        ids += new
        mask += [trainable] * len(new)
    return ids, mask


def check(fmt, messages, pieces):
    ids, mask = fmt.tokenize_chat(messages)
    want_ids, want_mask = expected(pieces)
    assert ids.tolist() == want_ids
    assert mask.tolist() == want_mask


def test_tulu_text():
    fmt = ChatFormat("tulu", ByteTokenizer())
    assert fmt.render(SINGLE) == "<|user|>\n2+2?\n<|assistant|>\n4<|end_of_text|>"
    assert fmt.render(MULTI, add_generation_prompt=False) == (
        "<|system|>\nBe brief.\n<|user|>\nHi\n<|assistant|>\nHello<|end_of_text|>\n"
        "<|user|>\n3*3?\n<|assistant|>\n9<|end_of_text|>")
    assert fmt.render(SINGLE[:1], add_generation_prompt=True) == "<|user|>\n2+2?\n<|assistant|>\n"


def test_tulu_masks_single_turn():
    check(ChatFormat("tulu", ByteTokenizer()), SINGLE, [
        ("<|begin_of_text|>", False), ("<|user|>", False), ("\n2+2?\n", False),
        ("<|assistant|>", False), ("\n", False), ("4", True), ("<|end_of_text|>", True)])


def test_tulu_masks_multi_turn_with_system():
    check(ChatFormat("tulu", ByteTokenizer()), MULTI, [
        ("<|begin_of_text|>", False), ("<|system|>", False), ("\nBe brief.\n", False),
        ("<|user|>", False), ("\nHi\n", False), ("<|assistant|>", False), ("\n", False),
        ("Hello", True), ("<|end_of_text|>", True), ("\n", False),
        ("<|user|>", False), ("\n3*3?\n", False), ("<|assistant|>", False), ("\n", False),
        ("9", True), ("<|end_of_text|>", True)])


def test_llama3_masks_single_and_multi_turn():
    fmt = ChatFormat("llama3", ByteTokenizer())
    head = [("<|start_header_id|>", False)]
    check(fmt, SINGLE, [
        ("<|begin_of_text|>", False), *head, ("user", False), ("<|end_header_id|>", False),
        ("\n\n2+2?", False), ("<|eot_id|>", False), *head, ("assistant", False),
        ("<|end_header_id|>", False), ("\n\n", False), ("4", True), ("<|eot_id|>", True)])
    check(fmt, MULTI, [
        ("<|begin_of_text|>", False), *head, ("system", False), ("<|end_header_id|>", False),
        ("\n\nBe brief.", False), ("<|eot_id|>", False),
        *head, ("user", False), ("<|end_header_id|>", False), ("\n\nHi", False),
        ("<|eot_id|>", False), *head, ("assistant", False), ("<|end_header_id|>", False),
        ("\n\n", False), ("Hello", True), ("<|eot_id|>", True),
        *head, ("user", False), ("<|end_header_id|>", False), ("\n\n3*3?", False),
        ("<|eot_id|>", False), *head, ("assistant", False), ("<|end_header_id|>", False),
        ("\n\n", False), ("9", True), ("<|eot_id|>", True)])


@pytest.mark.parametrize("jinja, builtin", [(TULU_JINJA, "tulu"), (LLAMA3_JINJA, "llama3")])
def test_tokenizer_jinja_template_matches_builtin(tmp_path, jinja, builtin):
    tok = load_tokenizer(str(make_hf_tokenizer(tmp_path, chat_template=jinja)))
    ours, theirs = ChatFormat(builtin, tok), ChatFormat("tokenizer", tok)
    for messages in (SINGLE, MULTI, MULTI[1:], MULTI[:4]):
        for gen in (False, True):
            assert theirs.render(messages, gen) == ours.render(messages, gen)
        a, b = ours.tokenize_chat(messages), theirs.tokenize_chat(messages)
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_hf_masks_cover_exactly_the_assistant_content_and_eos(tmp_path):
    tok = load_tokenizer(str(make_hf_tokenizer(tmp_path)))
    ids, mask = ChatFormat("tulu", tok).tokenize_chat(MULTI)
    assert ids[0] == tok.bos_id
    cuts = np.flatnonzero(np.diff(mask.astype(int))) + 1
    spans = zip(np.split(ids, cuts), np.split(mask, cuts))
    trained = [tok.decode(s.tolist()) for s, m in spans if m[0]]
    assert trained == ["Hello<|end_of_text|>", "9<|end_of_text|>"]


def test_sentencepiece_tokenizer_and_masks(tmp_path):
    tok = load_tokenizer(str(make_sentencepiece(tmp_path / "spm.model")))
    assert (tok.bos_id, tok.eos_id, tok.pad_id) == (1, 2, 3)
    assert tok.encode("</s>") == [2]  # control pieces written in text map to their ids
    assert tok.decode(tok.encode("The cat meows.")) == "The cat meows."
    ids, mask = ChatFormat("tulu", tok).tokenize_chat(SINGLE)
    assert ids[0] == 1 and ids[-1] == 2 and mask[-1] and not mask[:3].any()
    assert tok.decode(ids[mask].tolist()).startswith("4")


def test_recipe_can_name_special_tokens(tmp_path):
    path = str(make_hf_tokenizer(tmp_path))
    tok = load_tokenizer(path, eos_token="<|eot_id|>", pad_token="<|end_of_text|>")
    assert tok.eos_id == tok.token_to_id("<|eot_id|>") and tok.pad_id == 1
    with pytest.raises(ConfigError, match="data.eos_token='<nope>' is not in the vocabulary"):
        load_tokenizer(path, eos_token="<nope>")
    with pytest.raises(ConfigError, match="data.tokenizer="):
        load_tokenizer(str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="has no chat_template"):
        ChatFormat("tokenizer", load_tokenizer(path))


def open_instruct_labels(hf_tok, messages):
    """AI2's Tülu SFT masking, written from its definition (open-instruct's
    `sft_tulu_tokenize_and_truncate_v1`): the whole conversation is trained except each
    non-assistant turn, masked from the length of the conversation rendered up to it to the
    length of the conversation rendered through it (with the generation prompt when an assistant
    turn follows)."""
    def tokenize(prefix, gen):  # with bos in front, as AI2's `add_bos` does for Llama 3.1
        text = hf_tok.apply_chat_template(prefix, tokenize=False, add_generation_prompt=gen)
        return [hf_tok.bos_token_id] + hf_tok.encode(text, add_special_tokens=False)

    def length(prefix, gen):
        return len(tokenize(prefix, gen))

    ids = tokenize(messages, False)
    trained = np.ones(len(ids), dtype=bool)
    for i, message in enumerate(messages):
        if message["role"] == "assistant":
            continue
        start = 0 if i == 0 else length(messages[:i], False)
        follows = i + 1 < len(messages) and messages[i + 1]["role"] == "assistant"
        trained[start:length(messages[:i + 1], follows)] = False
    return np.asarray(ids), trained


def test_tulu_masks_equal_open_instruct(tmp_path):
    """Multi-turn Tülu masks equal AI2's, position for position (label 0 is never a target, so
    it is left out). In both, the `\\n` after a non-final assistant turn's eos opens the next
    user span and is masked."""
    from transformers import AutoTokenizer

    path = str(make_hf_tokenizer(tmp_path, chat_template=TULU_JINJA))
    ours, theirs = ChatFormat("tulu", load_tokenizer(path)), AutoTokenizer.from_pretrained(path)
    three_turns = MULTI + [{"role": "user", "content": "And 5+5?"},
                           {"role": "user", "content": "Quickly."},
                           {"role": "assistant", "content": "10"}]
    for messages in (SINGLE, MULTI, MULTI[1:], three_turns):
        ids, trainable = ours.tokenize_chat(messages)
        want_ids, want_trainable = open_instruct_labels(theirs, messages)
        assert ids.tolist() == want_ids.tolist()
        assert trainable[1:].tolist() == want_trainable[1:].tolist()
        eos_then_newline = np.flatnonzero((ids[:-1] == ours.tok.eos_id)
                                          & (ids[1:] == ours.tok.encode("\n")[0])) + 1
        assert len(eos_then_newline) == sum(m["role"] == "assistant" for m in messages) - 1
        assert not trainable[eos_then_newline].any()
