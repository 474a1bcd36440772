"""Chat templates and assistant-only label masks.

Templates render a conversation (list of {role, content}) to text:
- `tulu`:      `<|system|>\\n…\\n`, `<|user|>\\n…\\n`, `<|assistant|>\\n…` + eos (+ `\\n` unless it
               is the last turn); generation prompt `<|assistant|>\\n`. The tokenizer adds bos.
- `llama3`:    bos, then `<|start_header_id|>ROLE<|end_header_id|>\\n\\n` + stripped content +
               `<|eot_id|>` per turn; generation prompt is the assistant header.
- `tokenizer`: the tokenizer's own Jinja `chat_template`, rendered as `transformers` renders it.

`tokenize_chat` makes the token ids of a whole conversation and marks which tokens carry loss:
the content and end token (eos / `<|eot_id|>`) of every assistant turn, never the assistant
header, system or user turns. It finds each assistant span by rendering the conversation up to
that turn (with the generation prompt: where the span starts; with the turn: where it ends), so it
works for any template; it checks that these prefixes tokenize as prefixes of the whole, and
fails naming the template if they do not.
"""

from __future__ import annotations

import numpy as np

from engine.config import CHAT_TEMPLATES
from engine.data.tokenizer import Tokenizer
from engine.errors import ConfigError


def render_tulu(messages: list[dict], add_generation_prompt: bool, eos: str) -> str:
    parts = []
    for i, m in enumerate(messages):
        last = i == len(messages) - 1
        if m["role"] == "assistant":
            parts.append(f"<|assistant|>\n{m['content']}{eos}" + ("" if last else "\n"))
        else:
            parts.append(f"<|{m['role']}|>\n{m['content']}\n")
    if add_generation_prompt:
        parts.append("<|assistant|>\n")
    return "".join(parts)


def render_llama3(messages: list[dict], add_generation_prompt: bool, bos: str) -> str:
    parts = [bos]
    for m in messages:
        parts.append(f"<|start_header_id|>{m['role']}<|end_header_id|>\n\n"
                     f"{m['content'].strip()}<|eot_id|>")
    if add_generation_prompt:
        parts.append("<|start_header_id|>assistant<|end_header_id|>\n\n")
    return "".join(parts)


class ChatFormat:
    """A template bound to a tokenizer: render, tokenize with masks, and prompt ids."""

    def __init__(self, template: str, tokenizer: Tokenizer):
        if template not in CHAT_TEMPLATES:
            raise ConfigError(f"data.chat_template={template!r} is not one of "
                              f"{', '.join(CHAT_TEMPLATES)}")
        if template == "tokenizer" and not getattr(tokenizer, "chat_template", None):
            raise ConfigError(f"data.chat_template=tokenizer but {tokenizer.name} has no "
                              f"chat_template")
        self.template, self.tok = template, tokenizer

    def render(self, messages: list[dict], add_generation_prompt: bool = False) -> str:
        tok = self.tok
        if self.template == "tulu":
            return render_tulu(messages, add_generation_prompt, tok.id_to_token(tok.eos_id))
        if self.template == "llama3":
            bos = tok.id_to_token(tok.bos_id) if tok.bos_id is not None else ""
            return render_llama3(messages, add_generation_prompt, bos)
        return self.tok.render_chat(messages, add_generation_prompt)

    def encode(self, text: str) -> list[int]:
        """Token ids of rendered text, with bos in front unless the text already starts with it."""
        ids = self.tok.encode(text)
        bos = self.tok.bos_id
        if bos is not None and (not ids or ids[0] != bos):
            ids.insert(0, bos)
        return ids

    @property
    def stop_ids(self) -> set[int]:
        """Tokens that end an assistant turn."""
        stops = {self.tok.eos_id}
        if self.template == "llama3":
            eot = self.tok.token_to_id("<|eot_id|>")
            stops |= {eot} if eot is not None else set()
        return stops

    def prompt_ids(self, messages: list[dict]) -> list[int]:
        """Ids of a conversation followed by the generation prompt (what a model continues)."""
        return self.encode(self.render(messages, add_generation_prompt=True))

    def tokenize_chat(self, messages: list[dict], last_turn_only: bool = False
                      ) -> tuple[np.ndarray, np.ndarray]:
        """(ids, trainable) for a conversation: trainable[k] marks tokens that carry loss — of
        every assistant turn, or (preference data) of the final one only."""
        ids = self.encode(self.render(messages))
        trainable = np.zeros(len(ids), dtype=bool)
        for i, message in enumerate(messages):
            if message["role"] != "assistant" or (last_turn_only and i < len(messages) - 1):
                continue
            start_ids = self.encode(self.render(messages[:i], add_generation_prompt=True))
            end_ids = self.encode(self.render(messages[:i + 1]))
            start, end = len(start_ids), len(end_ids)
            if ids[:end] != end_ids or end_ids[:start] != start_ids:
                raise ValueError(f"chat template {self.template!r} with tokenizer "
                                 f"{self.tok.name}: turn {i} does not tokenize as a prefix of "
                                 f"the conversation, so its loss mask cannot be placed")
            trainable[start:end] = True
        return np.asarray(ids, dtype=np.int32), trainable
