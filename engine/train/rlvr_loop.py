"""The RLVR loop (stage `rlvr`): generate → score → log-probs → train → refit, on every rank.

    exit_code = train_rlvr(cfg, layout, stage)   # 0, or EXIT_REQUEUE on a stop signal

Each step:
1. **generate**: the loader's next `data.global_batch_size` prompts, `rlvr.samples_per_prompt`
   answers each, sampled by the colocated vLLM engines (`engine.rollout.colocated`) with a seed
   per prompt drawn from (seed, step, prompt): a resumed or re-run step samples the same answers;
2. **score**: the verifiers (`engine.rewards.pool`, on global rank 0, broadcast), reward =
   `rlvr.verifiable_reward` × score, or `rlvr.truncation_penalty` for an answer that never
   stopped; GRPO: group-relative advantages (`engine.rollout.batch`);
3. **log-probs**: the frozen reference's log-probs of the answers (a second model at the
   policy's layout, holding the initial weights; none when `rlvr.kl_coef` is 0), and the old
   ones (the policy before this step's updates) by a forward pass of the policy — except for
   GRPO with one optimizer step per rollout batch, whose training forward gives them
   (`engine.stages.rlvr.old_logprobs_from_training`): one forward pass fewer; PPO: the value
   model's values (`engine.train.critic`), then the per-token rewards with the KL penalty, GAE
   advantages (whitened) and returns (`engine.rollout.batch.ppo_advantages`);
4. **train**: `rlvr.epochs` × `rlvr.mini_batches` optimizer steps on the `grpo` loss over the
   answers (PPO: without its KL term), and on the same micro-batches the value model's; the
   loss measures the trainer's old log-probs' distance to vLLM's;
5. **refit**: the new weights into the engines (`ColocatedRollout.refit`).

Per step, besides the loss's metrics (policy loss, KL, clip fraction, ratio, entropy, and the
vLLM–trainer log-prob gap: mean and max |Δ| over answer tokens): reward overall and per dataset,
accuracy per dataset, answer length, truncation rate, verifier errors, generated tokens (count
and per second), and seconds per phase; PPO adds the value model's loss, clip fraction, mean value
and return, gradient norm and LR, the KL penalty per answer, the advantages' std before
whitening and the values' explained variance. The value model is checkpointed and resumed with
the policy (a companion of `engine.train.run.Run`).
Checkpoints, resume (the prompt loader's position is the data state; the
sampling seeds follow from the step), signals and evaluation are the shared plumbing's
(`engine.train.run`).
"""

from __future__ import annotations

import dataclasses
from collections import Counter, defaultdict

import numpy as np
import torch
import torch.distributed as dist

from engine.config import Config
from engine.data.loader import GlobalBatch, PackedLoader, pad_multiple
from engine.data.records import SkipReport
from engine.data.rlvr_prompts import load_rlvr_prompts
from engine.launch.layout import Layout
from engine.metrics.log import log
from engine.metrics.timing import PhaseTimer
from engine.rewards.pool import RewardPool
from engine.losses.ppo import answer_rewards
from engine.rollout.batch import RolloutBatch, ppo_advantages, rollout_batch
from engine.rollout.colocated import ColocatedRollout
from engine.rollout.vllm_engine import Completion, SamplingSpec
from engine.stages.rlvr import old_logprobs_from_training
from engine.train.build import Training, build_model_with_weights, build_training
from engine.train.critic import Critic
from engine.train.evaluate import log_eval
from engine.train.optimizer import Bf16Module
from engine.train.reference import token_logprobs
from engine.train.run import Run
from engine.train.run_dir import open_run_dir
from engine.train.step import StepResult

LOGGED = ("reward", "accuracy", "answer_tokens", "truncated")


TRAIN_SAMPLES, EVAL_SAMPLES = 0, 1  # seed streams


def sampling_seeds(seed: int, stream: int, step: int, count: int) -> list[int]:
    """One seed per prompt of a step (of training, or of evaluation); its answers use seed,
    seed + 1, ... (vLLM's `n`)."""
    return [int(np.random.SeedSequence([seed, stream, step, i]).generate_state(1)[0])
            for i in range(count)]


class Scorer:
    """The verifiers on global rank 0 (a pool of worker processes), the scores on every rank."""

    def __init__(self, cfg: Config, layout: Layout, chat):
        self.chat = chat
        r = cfg.rlvr
        self.pool = RewardPool(workers=r.reward_workers, timeout_s=r.reward_timeout_s,
                               math_rule=r.math_rule) if layout.rank == 0 else None

    def answer_text(self, completion: Completion) -> str:
        stops = self.chat.stop_ids
        return self.chat.tok.decode([t for t in completion.token_ids if t not in stops])

    def __call__(self, prompts, groups: list[list[Completion]]) -> tuple[list[list[float]],
                                                                        Counter]:
        """Each answer's verifier score (0 to 1), grouped like `groups`, and the count of
        answers not judged, by reason."""
        result = [None, None]
        if self.pool is not None:
            rows = [(p.dataset, self.answer_text(c), p.ground_truth)
                    for p, group in zip(prompts, groups) for c in group]
            scored = self.pool.score(rows)
            result = [scored.scores, dict(scored.counts)]
        dist.broadcast_object_list(result, src=0)
        flat, counts = result
        n = len(groups[0])
        return [flat[i:i + n] for i in range(0, len(flat), n)], Counter(counts)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()


def build_reference(cfg: Config, layout: Layout):
    """The frozen initial policy at the policy's layout (its shards only), or None when the loss
    has no KL term."""
    if cfg.rlvr.kl_coef == 0:
        return None
    model = build_model_with_weights(cfg, layout, role="reference model (frozen)")
    if cfg.precision == "bf16":
        model = Bf16Module(model.config, model)
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()


def rollout_metrics(batch: RolloutBatch, scores: list[list[float]], groups) -> dict:
    """Per-step rollout metrics: reward, accuracy per dataset, length, truncation."""
    flat_scores = np.asarray([s for group in scores for s in group])
    lengths = np.asarray([len(c.token_ids) for group in groups for c in group])
    out = {"reward": float(batch.rewards.mean()), "accuracy": float(flat_scores.mean()),
           "answer_tokens": float(lengths.mean()), "answer_tokens_max": int(lengths.max()),
           "truncated": float(batch.truncated.mean())}
    by_dataset = defaultdict(list)
    for dataset, score in zip(batch.datasets, flat_scores):
        by_dataset[dataset].append(score)
    for dataset, values in sorted(by_dataset.items()):
        out[f"accuracy/{dataset}"] = float(np.mean(values))
    return out


class RLVREvaluator:
    """Held-out RLVR prompts (`eval.sources`) answered by the rollout engines and scored: greedy
    (eval_accuracy overall and per dataset, answer length, truncation) and sampled as in
    training (`eval.samples_per_prompt` answers, default `rlvr.samples_per_prompt`, at
    `rollout.temperature`, the same seeds at every evaluation: eval_reward overall and per
    dataset, the expected reward that training raises)."""

    def __init__(self, cfg: Config, rollout: ColocatedRollout, scorer: Scorer, chat, model,
                 spec: SamplingSpec):
        report, counts = SkipReport(skip=False), Counter()
        held_out = dataclasses.replace(cfg.data, sources=cfg.eval.sources)
        self.prompts = load_rlvr_prompts(held_out, chat, cfg.seed, report, counts,
                                         cfg.rlvr.max_prompt_tokens)
        self.cfg, self.rollout, self.scorer, self.model = cfg, rollout, scorer, model
        self.spec = dataclasses.replace(spec, n=cfg.eval.samples_per_prompt or spec.n)

    def _scores(self, spec: SamplingSpec, seeds: list[int]):
        groups = self.rollout.generate([p.prompt_ids.tolist() for p in self.prompts], seeds,
                                       spec, self.model)
        return groups, np.asarray(self.scorer(self.prompts, groups)[0])

    def __call__(self, train_step, step: int) -> dict:
        greedy = dataclasses.replace(self.spec, n=1, temperature=0.0)
        groups, greedy_scores = self._scores(greedy, [0] * len(self.prompts))
        result = self._by_dataset("eval_accuracy", greedy_scores, 1.0)
        result["eval_answer_tokens"] = float(np.mean([len(g[0].token_ids) for g in groups]))
        result["eval_truncated"] = float(np.mean([g[0].truncated for g in groups]))
        _, sampled = self._scores(self.spec, sampling_seeds(self.cfg.seed, EVAL_SAMPLES, 0,
                                                            len(self.prompts)))
        result.update(self._by_dataset("eval_reward", sampled, self.cfg.rlvr.verifiable_reward))
        log_eval(step, result)
        return result

    def _by_dataset(self, name: str, scores: np.ndarray, scale: float) -> dict:
        """`name`: the mean score × scale over all prompts, and `name/DATASET` per dataset."""
        out = {name: float(scores.mean()) * scale}
        for dataset in sorted({p.dataset for p in self.prompts}):
            mine = [s for s, p in zip(scores, self.prompts) if p.dataset == dataset]
            out[f"{name}/{dataset}"] = float(np.mean(mine)) * scale
        return out


def _mean_result(results: list[StepResult], maxima: tuple[str, ...] = ()) -> StepResult:
    """Several updates' results as one: metrics (the maximum of `maxima`) and gradient norms
    averaged, the first LR."""
    mean = {k: float((max if k in maxima else np.mean)([res.metrics[k] for res in results]))
            for k in results[0].metrics}
    return StepResult(mean, float(np.mean([res.grad_norm for res in results])), results[0].lr,
                      any(res.skipped for res in results))


def gap_weights(answer_masks: list[np.ndarray], mini_batches: int) -> list[np.ndarray]:
    """Each answer token's weight in the mean vLLM–trainer log-prob gap: 1 / the rollout batch's
    answer tokens, × `mini_batches`, since each optimizer step sums over one mini-batch and
    the step's metrics are the mean over its optimizer steps."""
    total = sum(int((m > 0).sum()) for m in answer_masks)
    return [(m > 0) * (mini_batches / max(total, 1)) for m in answer_masks]


def _train_on(training: Training, critic: Critic | None, cfg: Config, layout: Layout,
              batch: RolloutBatch, token_data: dict, step: int,
              pad_id: int) -> tuple[GlobalBatch, StepResult, StepResult | None]:
    """`rlvr.epochs` passes of `rlvr.mini_batches` optimizer steps over the answers (seeded
    order), the value model (PPO) updated on the same micro-batches; the steps' batches joined
    and each model's results averaged."""
    r = cfg.rlvr
    loader = PackedLoader(
        batch.sequences, target_masks=[m > 0 for m in batch.answer_masks], token_data=token_data,
        global_batch_size=len(batch.sequences) // r.mini_batches,
        max_tokens_per_micro_batch=cfg.data.max_tokens_per_micro_batch, dp_size=layout.dp,
        dp_rank=layout.dp_rank, pad_id=pad_id, pad_multiple=pad_multiple(cfg.parallel),
        seed=cfg.seed + step, shuffle=r.mini_batches > 1, reduction=cfg.train.loss_reduction)
    batches, results, value_results = [], [], []
    for _ in range(r.epochs * r.mini_batches):
        batches.append(loader.next_batch())
        results.append(training.step(batches[-1].micro_batches))
        if critic is not None:
            value_results.append(critic.step(batches[-1].micro_batches))
    joined = GlobalBatch([mb for b in batches for mb in b.micro_batches],
                         [n for b in batches for n in b.lengths],
                         sum(b.target_tokens for b in batches),
                         sum(b.token_budget for b in batches))
    return (joined, _mean_result(results, training.step.loss.maxima),
            _mean_result(value_results) if value_results else None)


def train_rlvr(cfg: Config, layout: Layout, stage) -> int:
    run_dir = open_run_dir(cfg, layout)
    training = build_training(cfg, layout, stage, run_dir)
    chat, pad_id = training.data.examples.chat, training.data.tokenizer.pad_id
    prompts_all = training.data.examples.records
    critic = Critic(cfg, layout, training) if cfg.rlvr.algorithm == "ppo" else None
    reference = build_reference(cfg, layout)
    scorer = Scorer(cfg, layout, chat)
    rollout = ColocatedRollout(cfg, layout, sorted(chat.stop_ids), run_dir.path)
    r, ro = cfg.rlvr, cfg.rollout
    spec = SamplingSpec(n=r.samples_per_prompt, temperature=ro.temperature, top_p=ro.top_p,
                        max_new_tokens=ro.max_new_tokens)
    try:
        evaluator = RLVREvaluator(cfg, rollout, scorer, chat, training.model, spec) \
            if cfg.eval.sources else None
        companions = {"value": critic} if critic is not None else None
        with Run(cfg, layout, training, run_dir, evaluator, companions) as run:
            log.info("rollout: weights into the engines in %.2fs",
                     rollout.refit(training.model, run.start_step))
            for step in run.steps():
                _step(cfg, layout, training, critic, reference, rollout, scorer, spec,
                      prompts_all, step, pad_id, run)
    finally:
        rollout.shutdown()
        scorer.close()
    return run.exit_code


def _step(cfg, layout, training, critic, reference, rollout, scorer, spec, prompts_all, step,
          pad_id, run) -> None:
    timer, r = PhaseTimer(), cfg.rlvr
    prompts = [prompts_all[i] for i in training.loader.next_items()]
    with timer("generate"):
        groups = rollout.generate([p.prompt_ids.tolist() for p in prompts],
                                  sampling_seeds(cfg.seed, TRAIN_SAMPLES, step, len(prompts)), spec,
                                  training.model)
    with timer("sleep"):
        rollout.sleep()  # GPU: the trainer gets the engines' memory until the refit
    with timer("score"):
        scores, errors = scorer(prompts, groups)
        rewards = [answer_rewards(torch.tensor(group_scores),
                                  torch.tensor([c.truncated for c in group]),
                                  r.verifiable_reward, r.truncation_penalty).tolist()
                   for group_scores, group in zip(scores, groups)]
        batch = rollout_batch([p.prompt_ids for p in prompts], [p.dataset for p in prompts],
                              groups, rewards,
                              r.advantage_normalization if critic is None else None)
    extra = {}
    token_data = {"vllm_logprobs": batch.vllm_logprobs,
                  "gap_weights": gap_weights(batch.answer_masks, r.mini_batches)}
    with timer("logprobs"):
        temperature = cfg.rollout.temperature
        if reference is not None:
            token_data["ref_logprobs"] = token_logprobs(reference, batch.sequences, layout, cfg,
                                                        pad_id, temperature)
        if not old_logprobs_from_training(cfg):
            token_data["old_logprobs"] = token_logprobs(training.model, batch.sequences, layout,
                                                        cfg, pad_id, temperature)
        if critic is not None:
            old = token_data["old_logprobs"]
            ref = token_data.get("ref_logprobs", old)
            values = critic.values(batch.sequences, pad_id)
            batch.advantages, returns, ppo_metrics = ppo_advantages(
                batch, old, ref, values, r.kl_coef, r.gamma, r.lam)
            token_data.update(old_values=values, returns=returns)
            extra.update(ppo_metrics)
        token_data["advantages"] = batch.advantages
    with timer("train"):
        joined, result, value_result = _train_on(training, critic, cfg, layout, batch,
                                                 token_data, step, pad_id)
    with timer("refit"):
        rollout.refit(training.model, step)
    answer_tokens = sum(len(c.token_ids) for group in groups for c in group)
    extra.update(rollout_metrics(batch, scores, groups))
    if value_result is not None:
        extra.update({k: v for k, v in value_result.metrics.items() if k != "loss"})
        extra.update(value_grad_norm=value_result.grad_norm, value_lr=value_result.lr,
                     value_skipped=value_result.skipped)
        result = dataclasses.replace(result, skipped=result.skipped or value_result.skipped)
    extra.update({f"score_errors/{k}": v for k, v in sorted(errors.items())})
    extra["generated_tokens"] = answer_tokens
    extra["generate_tokens_per_s"] = answer_tokens / max(timer.totals["generate"], 1e-9)
    extra["rollout_rebuilds"] = rollout.rebuilds
    extra.update({f"time/{k}": v for k, v in timer.totals.items()})
    run.record(step, joined, result, extra, LOGGED)
