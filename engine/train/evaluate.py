"""In-run evaluation on held-out chat data (`eval.sources`), the evaluator of stage `sft`.

- `eval_loss`: mean loss per assistant token, forward only through megatron's schedule, so it
  runs at any TP/PP/DP layout;
- `eval_exact_match` (`ExactMatch`, also used by stage `dpo` on held-out pairs' chosen answers):
  share of conversations whose last assistant turn the model reproduces exactly with greedy
  decoding from the conversation before it (PP=1 only; per category too when records carry a
  `category` field).
"""

from __future__ import annotations

from collections import Counter

from engine.config import Config
from engine.data.chat_template import ChatFormat
from engine.data.loader import PackedLoader, pad_multiple
from engine.data.records import SkipReport, check_messages
from engine.data.sources import load_checked
from engine.launch.layout import Layout
from engine.metrics.log import log
from engine.train.generate import greedy_generate


class ChatEvaluator:
    """Held-out conversations: the loss per assistant token, and exact match."""

    def __init__(self, cfg: Config, layout: Layout, chat: ChatFormat):
        sequences, masks, answered, categories = [], [], [], []
        for source in cfg.eval.sources:
            def check(record, field=source.messages_field):
                return check_messages(record, field), record.get("category", "all")

            for _, (messages, category) in load_checked(source, check, SkipReport(skip=False)):
                ids, trainable = chat.tokenize_chat(messages)
                ids, trainable = ids[:cfg.data.max_seq_len], trainable[:cfg.data.max_seq_len]
                if trainable[1:].any():
                    sequences.append(ids)
                    masks.append(trainable[1:])
                if messages[-1]["role"] == "assistant":
                    answered.append(messages)
                    categories.append(category)
        self.exact_match = ExactMatch(cfg, layout, chat, answered, categories)
        self.loader = PackedLoader(
            sequences, target_masks=masks, reduction="token_mean",
            global_batch_size=len(sequences),
            max_tokens_per_micro_batch=cfg.data.max_tokens_per_micro_batch, dp_size=layout.dp,
            dp_rank=layout.dp_rank, pad_id=chat.tok.pad_id,
            pad_multiple=pad_multiple(cfg.parallel), seed=cfg.seed, shuffle=False)

    def __call__(self, train_step, step: int) -> dict:
        self.loader.load_state_dict({"consumed": 0})
        result = {"eval_loss":
                  train_step.evaluate(self.loader.next_batch().micro_batches)["loss"]}
        result.update(self.exact_match(train_step.model))
        log_eval(step, result)
        return result


def log_eval(step: int, result: dict) -> None:
    log.info("eval at step %d: %s", step, " | ".join(f"{k} {v:.4f}" for k, v in result.items()))


class ExactMatch:
    """Share of conversations whose final assistant turn greedy decoding reproduces exactly from
    the turns before it, overall and per category (when there are several). Generation runs the
    whole model in one process group, so it needs PP=1; with PP > 1 it reports nothing."""

    def __init__(self, cfg: Config, layout: Layout, chat: ChatFormat,
                 conversations: list[list[dict]], categories: list[str]):
        self.cfg, self.layout, self.chat = cfg, layout, chat
        self.pad_multiple = pad_multiple(cfg.parallel)
        self.prompts = [chat.prompt_ids(messages[:-1]) for messages in conversations]
        self.answers = [messages[-1]["content"].strip() for messages in conversations]
        self.categories = categories

    def __call__(self, model) -> dict:
        if self.layout.pp > 1 or not self.prompts:
            return {}
        model.eval()
        outputs = greedy_generate(
            model, self.prompts, max_new_tokens=self.cfg.eval.max_new_tokens,
            stop_ids=self.chat.stop_ids, real_vocab_size=self.cfg.model.vocab_size,
            pad_id=self.chat.tok.pad_id, pad_multiple=self.pad_multiple,
            device=self.layout.device)
        model.train()
        hits, totals = Counter(), Counter()
        for i, (out, answer, category) in enumerate(zip(outputs, self.answers, self.categories)):
            text = self.chat.tok.decode(out).strip()
            correct = text == answer
            if i < 3:
                question = self.chat.tok.decode(self.prompts[i])
                log.info("  sample %d: %r -> %r (%s)", i, question[-60:], text[:80],
                         "correct" if correct else f"expected {answer[:80]!r}")
            hits[category] += correct
            totals[category] += 1
        result = {"eval_exact_match": sum(hits.values()) / len(self.answers)}
        if len(totals) > 1:
            result.update({f"eval_exact_match/{c}": hits[c] / totals[c] for c in sorted(totals)})
        return result

