"""Helpers for tests that launch the engine as users do (python -m / torchrun) and read run dirs."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "recipes" / "tiny" / "pretrain.yaml"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(args: list[str], nproc: int = 1, env: dict | None = None,
           timeout: int = 600) -> subprocess.CompletedProcess:
    """Run `python -m MODULE ARGS` (`args` = [MODULE, ...]), or the same under torchrun."""
    target = ["-m", *args]
    if nproc == 1:
        cmd = [sys.executable, *target]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc),
               "--master-port", str(free_port()), *target]
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run(cmd, cwd=ROOT, env=full_env, capture_output=True, text=True,
                          timeout=timeout)


def script_json(args: list[str], nproc: int = 1, marker: str = "{", timeout: int = 300,
                env: dict | None = None) -> dict:
    """Run a measuring script (`launch`) that must succeed, and return the JSON object of the
    last line of its output holding `marker`."""
    proc = launch(args, nproc, env=env, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads([line for line in proc.stdout.splitlines() if marker in line][-1])


def train(out: Path, overrides: list[str], nproc: int = 1, recipe: Path = TINY) -> list[dict]:
    """Train through the CLI and return metrics.jsonl; fail with the run's output if it fails."""
    proc = launch(["engine.train", str(recipe), f"output_dir={out}", *overrides], nproc)
    assert proc.returncode == 0, f"training failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def assert_same_metrics(a: list[dict], b: list[dict], keys: tuple[str, ...],
                        tolerance: float) -> None:
    """Two runs' metrics.jsonl rows: the same steps, and `keys` within `tolerance` at each."""
    assert [m["step"] for m in a] == [m["step"] for m in b]
    for x, y in zip(a, b):
        for key in keys:
            assert abs(x[key] - y[key]) <= tolerance, (key, x, y)


def stop_after_first_step(out: Path, overrides: list[str], recipe: Path) -> None:
    """Start training as a user does, send SIGTERM once the first step is in metrics.jsonl, and
    check that the run checkpointed and exited to be requeued."""
    from engine.train.signals import EXIT_REQUEUE

    proc = subprocess.Popen([sys.executable, "-m", "engine.train", str(recipe),
                             f"output_dir={out}", *overrides], cwd=ROOT,
                            env={**os.environ, "OMP_NUM_THREADS": "1"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    metrics = out / "metrics.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and not (metrics.exists() and metrics.read_text().strip()):
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == EXIT_REQUEUE, err[-3000:]


def make_hf_tokenizer(directory: Path, chat_template: str | None = None,
                      specials=("<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>",
                                "<|start_header_id|>", "<|end_header_id|>")) -> Path:
    """A small byte-level BPE tokenizer directory that `AutoTokenizer` loads, trained here."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from engine.data.synthetic import tiny_corpus

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=list(specials),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(tiny_corpus(300, seed=1), trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=specials[0],
                                   eos_token=specials[1])
    if chat_template is not None:
        fast.chat_template = chat_template
    fast.save_pretrained(directory)
    return directory


def make_sentencepiece(path: Path) -> Path:
    """A small sentencepiece model with <s>/</s> and a user-defined <|assistant|> piece."""
    import sentencepiece

    from engine.data.synthetic import tiny_corpus

    text = path.with_suffix(".txt")
    text.write_text("\n".join(tiny_corpus(300, seed=2)))
    sentencepiece.SentencePieceTrainer.train(
        input=str(text), model_prefix=str(path.with_suffix("")), vocab_size=200,
        model_type="bpe", bos_id=1, eos_id=2, pad_id=3, unk_id=0,
        user_defined_symbols=["<|user|>", "<|assistant|>", "<|system|>"], minloglevel=2)
    return path.with_suffix(".model")


def slurm_tasks(args: list[str], ntasks: int) -> list[subprocess.Popen]:
    """`python -m engine.train ARGS` started as `srun` starts tasks: SLURM_* variables, one
    process per task, no torchrun."""
    port = str(free_port())
    procs = []
    for rank in range(ntasks):
        env = {**os.environ, "SLURM_PROCID": str(rank), "SLURM_NTASKS": str(ntasks),
               "SLURM_LOCALID": str(rank), "SLURM_JOB_ID": "4242", "MASTER_ADDR": "127.0.0.1",
               "MASTER_PORT": port, "OMP_NUM_THREADS": "1"}
        for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
            env.pop(key, None)
        procs.append(subprocess.Popen([sys.executable, "-m", "engine.train", *args], cwd=ROOT,
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True))
    return procs
