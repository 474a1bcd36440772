# Set-up and the two everyday commands. Everything installs into .venv from nothing:
#   make demo   # create the environment, fine-tune the tiny chat recipe on the CPU (~2 min)
#   make test   # create the environment, run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test clean

install: $(STAMP)

$(STAMP): setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch 2.13.0 is the CPU wheel on these machines; install it first so nothing pulls CUDA.
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q megatron-core==0.16.1 -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m engine.train recipes/tiny/sft.yaml output_dir=runs/tiny-sft

test: $(STAMP)
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) runs
