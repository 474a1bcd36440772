"""Tokenizers behind one small interface, loaded from local paths only.

    tok = load_tokenizer("byte")                         # built in: UTF-8 bytes + special tokens
    tok = load_tokenizer("/ckpt/Llama-3.1-8B")           # a Hugging Face tokenizer directory
    tok = load_tokenizer("/tok/spm.model")               # a sentencepiece model

`encode(text)` turns text into ids without adding bos/eos, mapping special-token strings that
appear in the text (`<|end_of_text|>`, `<|eot_id|>`, ...) to their ids, as chat templates need.
bos/eos/pad come from the tokenizer unless the recipe names them (`data.bos_token`, ...); a
tokenizer without a pad token pads with eos (padding never carries loss or attention).
"""

from __future__ import annotations

import re
from pathlib import Path

from engine.errors import ConfigError

BYTE_SPECIAL_TOKENS = ("<|begin_of_text|>", "<|end_of_text|>", "<pad>", "<|system|>", "<|user|>",
                       "<|assistant|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>")


class _SpecialSplitter:
    """Splits text on special-token strings: [(is_special, piece), ...]."""

    def __init__(self, specials: dict[str, int]):
        self.specials = specials
        names = sorted(specials, key=len, reverse=True)
        self.pattern = re.compile("(" + "|".join(map(re.escape, names)) + ")") if names else None

    def split(self, text: str):
        if self.pattern is None:
            return [(False, text)]
        return [(i % 2 == 1, piece) for i, piece in enumerate(self.pattern.split(text)) if piece]


class Tokenizer:
    """Common interface; subclasses implement `_encode_plain`, `decode`, `token_to_id`."""

    name: str
    vocab_size: int
    bos_id: int | None
    eos_id: int
    pad_id: int
    chat_template: str | None = None

    def _encode_plain(self, text: str) -> list[int]:
        raise NotImplementedError

    def encode(self, text: str) -> list[int]:
        ids: list[int] = []
        for special, piece in self._splitter.split(text):
            ids.extend([self._splitter.specials[piece]] if special else self._encode_plain(piece))
        return ids

    def token_to_id(self, token: str) -> int | None:
        raise NotImplementedError

    def id_to_token(self, token_id: int) -> str:
        raise NotImplementedError

    def set_special(self, role: str, token: str) -> None:
        """Override bos/eos/pad with a token named in the recipe."""
        token_id = self.token_to_id(token)
        if token_id is None:
            raise ConfigError(f"data.{role}_token={token!r} is not in the vocabulary of "
                             f"{self.name}")
        setattr(self, f"{role}_id", token_id)


class ByteTokenizer(Tokenizer):
    """Text as UTF-8 bytes (ids 0-255); the special tokens follow."""

    def __init__(self):
        self.name = "byte"
        self.special = {name: 256 + i for i, name in enumerate(BYTE_SPECIAL_TOKENS)}
        self.vocab_size = 256 + len(BYTE_SPECIAL_TOKENS)
        self.bos_id = self.special["<|begin_of_text|>"]
        self.eos_id = self.special["<|end_of_text|>"]
        self.pad_id = self.special["<pad>"]
        self._splitter = _SpecialSplitter(self.special)

    def _encode_plain(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def token_to_id(self, token: str) -> int | None:
        return self.special.get(token)

    def id_to_token(self, token_id: int) -> str:
        return self.decode([token_id])

    def decode(self, ids) -> str:
        names = {v: k for k, v in self.special.items()}
        out, run = [], bytearray()
        for i in ids:
            if i < 256:
                run.append(i)
                continue
            out.append(run.decode("utf-8", errors="replace"))
            run = bytearray()
            out.append(names.get(i, f"<unk:{i}>"))
        out.append(run.decode("utf-8", errors="replace"))
        return "".join(out)


class HFTokenizer(Tokenizer):
    """A Hugging Face tokenizer directory (tokenizer.json / tokenizer_config.json)."""

    def __init__(self, path: str):
        from transformers import AutoTokenizer

        self.name = path
        self.hf = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.vocab_size = len(self.hf)
        self.bos_id = self.hf.bos_token_id
        if self.hf.eos_token_id is None:
            raise ConfigError(f"{path}: the tokenizer has no eos token; set data.eos_token")
        self.eos_id = self.hf.eos_token_id
        self.pad_id = self.hf.pad_token_id if self.hf.pad_token_id is not None else self.eos_id
        self.chat_template = self.hf.chat_template
        self._splitter = _SpecialSplitter({})  # the HF tokenizer splits special tokens itself

    def encode(self, text: str) -> list[int]:
        return self.hf.encode(text, add_special_tokens=False)

    def decode(self, ids) -> str:
        return self.hf.decode(list(ids))

    def token_to_id(self, token: str) -> int | None:
        token_id = self.hf.convert_tokens_to_ids(token)
        return None if token_id is None or token_id == self.hf.unk_token_id else token_id

    def id_to_token(self, token_id: int) -> str:
        return self.hf.convert_ids_to_tokens(token_id)

    def render_chat(self, messages: list[dict], add_generation_prompt: bool) -> str:
        if not self.chat_template:
            raise ConfigError(f"{self.name}: the tokenizer has no chat_template; choose "
                             f"data.chat_template tulu or llama3")
        return self.hf.apply_chat_template(messages, tokenize=False,
                                           add_generation_prompt=add_generation_prompt)


class SentencePieceTokenizer(Tokenizer):
    """A sentencepiece `.model` file; control pieces written in text map to their ids."""

    def __init__(self, path: str):
        import sentencepiece

        self.name = path
        self.sp = sentencepiece.SentencePieceProcessor(model_file=path)
        self.vocab_size = self.sp.get_piece_size()
        self.bos_id = self.sp.bos_id() if self.sp.bos_id() >= 0 else None
        if self.sp.eos_id() < 0:
            raise ConfigError(f"{path}: the model has no eos piece; set data.eos_token")
        self.eos_id = self.sp.eos_id()
        self.pad_id = self.sp.pad_id() if self.sp.pad_id() >= 0 else self.eos_id
        # Control pieces (<s>, </s>, ...) are never produced from text by sentencepiece itself;
        # user-defined pieces are, so only the former need splitting out.
        specials = {self.sp.id_to_piece(i): i for i in range(self.vocab_size)
                    if self.sp.is_control(i)}
        self._splitter = _SpecialSplitter(specials)

    def _encode_plain(self, text: str) -> list[int]:
        return self.sp.encode(text)

    def decode(self, ids) -> str:
        return self.sp.decode(list(ids))

    def token_to_id(self, token: str) -> int | None:
        token_id = self.sp.piece_to_id(token)
        return None if token_id == self.sp.unk_id() and token != self.sp.id_to_piece(
            token_id) else token_id

    def id_to_token(self, token_id: int) -> str:
        return self.sp.id_to_piece(token_id)


def load_tokenizer(spec: str, bos_token: str | None = None, eos_token: str | None = None,
                   pad_token: str | None = None) -> Tokenizer:
    if spec == "byte":
        tok: Tokenizer = ByteTokenizer()
    else:
        path = Path(spec)
        if path.is_dir():
            if not any((path / f).exists() for f in ("tokenizer.json", "tokenizer_config.json")):
                raise ConfigError(f"data.tokenizer={spec}: no tokenizer.json or "
                                 f"tokenizer_config.json in the directory")
            tok = HFTokenizer(str(path))
        elif path.suffix == ".model" and path.is_file():
            tok = SentencePieceTokenizer(str(path))
        else:
            raise ConfigError(f"data.tokenizer={spec!r}: expected 'byte', a Hugging Face "
                             f"tokenizer directory or a sentencepiece .model file")
    for role, token in (("bos", bos_token), ("eos", eos_token), ("pad", pad_token)):
        if token is not None:
            tok.set_special(role, token)
    return tok
