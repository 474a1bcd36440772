"""Tokenizers. `byte`: UTF-8 bytes (ids 0-255) plus Llama-3-named special tokens.

The byte tokenizer needs no files, which is what the tiny CPU recipes use. Hugging Face tokenizer
directories and sentencepiece models come with the chat data pipeline.
"""

from __future__ import annotations

SPECIAL_TOKENS = ("<|begin_of_text|>", "<|end_of_text|>", "<pad>", "<|system|>", "<|user|>",
                  "<|assistant|>")


class ByteTokenizer:
    """Text as UTF-8 bytes; special tokens follow the 256 byte ids."""

    vocab_size = 256 + len(SPECIAL_TOKENS)

    def __init__(self):
        self.special = {name: 256 + i for i, name in enumerate(SPECIAL_TOKENS)}
        self.bos_id = self.special["<|begin_of_text|>"]
        self.eos_id = self.special["<|end_of_text|>"]
        self.pad_id = self.special["<pad>"]

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

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


def load_tokenizer(name: str):
    if name == "byte":
        return ByteTokenizer()
    raise ValueError(f"data.tokenizer={name!r}: only 'byte' is supported so far")
