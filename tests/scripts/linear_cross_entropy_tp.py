"""The fused language-model head with its vocabulary split over the ranks (gloo), against the
full-logits fp64 reference of one process.

    torchrun --nproc-per-node N python -m tests.scripts.linear_cross_entropy_tp

Each rank holds 1/N of the padded vocabulary rows (the last slice holds the padding); prints from
rank 0 {"tp": N, "errors": {name: largest absolute error over the ranks}} for the log-probs and
entropies, the weighted loss, the gradient of the hidden states summed over the ranks and each
rank's slice of the weight's gradient.
"""

import json

import torch
import torch.distributed as dist

from kernels.linear_cross_entropy import linear_cross_entropy_loss, linear_logprobs
from tests.unit.kernels import make_problem, reference_logprobs, reference_loss

CHUNK_TOKENS = 8


def _fused(problem, rows: slice, group):
    """Values and gradients (d_hidden summed over the ranks, this rank's d_weight rows) of the
    log-prob/entropy objective and of the loss."""
    g_logprobs, g_entropy = torch.randn(2, len(problem.labels),
                                        generator=torch.Generator().manual_seed(1))
    common = dict(real_vocab_size=problem.real_vocab_size, vocab_start=rows.start,
                  tp_group=group, chunk_tokens=CHUNK_TOKENS)
    hidden = problem.hidden.clone().requires_grad_()
    weight = problem.weight[rows].clone().requires_grad_()
    logprobs, entropy = linear_logprobs(hidden, weight, problem.labels, with_entropy=True,
                                        **common)
    ((g_logprobs * logprobs).sum() + (g_entropy * entropy).sum()).backward()
    out = {"logprobs": logprobs, "entropy": entropy, "logprob_d_hidden": hidden.grad,
           "logprob_d_weight": weight.grad}
    hidden.grad = weight.grad = None
    loss = linear_cross_entropy_loss(hidden, weight, problem.labels, problem.weights, **common)
    loss.backward()
    out.update(loss=loss, loss_d_hidden=hidden.grad, loss_d_weight=weight.grad)
    for name in ("logprob_d_hidden", "loss_d_hidden"):
        dist.all_reduce(out[name], group=group)
    return out, (g_logprobs, g_entropy)


def _reference(problem, rows: slice, upstream):
    g_logprobs, g_entropy = (g.double() for g in upstream)
    hidden = problem.hidden.double().requires_grad_()
    weight = problem.weight.double().requires_grad_()
    logprobs, entropy = reference_logprobs(hidden, weight, problem.labels,
                                           problem.real_vocab_size)
    ((g_logprobs * logprobs).sum() + (g_entropy * entropy).sum()).backward()
    out = {"logprobs": logprobs, "entropy": entropy, "logprob_d_hidden": hidden.grad,
           "logprob_d_weight": weight.grad[rows]}
    hidden.grad = weight.grad = None
    loss = reference_loss(hidden, weight, problem.labels, problem.weights,
                          problem.real_vocab_size)
    loss.backward()
    out.update(loss=loss, loss_d_hidden=hidden.grad, loss_d_weight=weight.grad[rows])
    return out


def main():
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    problem = make_problem(vocab=40, real_vocab_size=35)
    shard = problem.weight.shape[0] // world
    rows = slice(rank * shard, (rank + 1) * shard)
    fused, upstream = _fused(problem, rows, dist.group.WORLD)
    reference = _reference(problem, rows, upstream)
    names = sorted(fused)
    errors = torch.tensor([(fused[n].double() - reference[n]).abs().max().item() for n in names])
    dist.all_reduce(errors, op=dist.ReduceOp.MAX)
    if rank == 0:
        print(json.dumps({"tp": world, "errors": dict(zip(names, errors.tolist()))}), flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
