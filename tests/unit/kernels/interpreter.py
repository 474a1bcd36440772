"""Running a test file's Triton kernels under Triton's interpreter on the CPU.

Triton reads TRITON_INTERPRET once, when it is first imported, so a file's interpreted tests run
in a fresh pytest process with it set (`run_in_interpreter`, called by one test of the file);
in the parent process they show as skipped (`in_the_interpreter`).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.util import ROOT

INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"
in_the_interpreter = pytest.mark.skipif(
    not INTERPRETED, reason="runs in the TRITON_INTERPRET=1 process of its file")
the_parent_process = pytest.mark.skipif(INTERPRETED, reason="this is the interpreter's process")


def run_in_interpreter(test_file: str, expected_passed: int) -> None:
    """Run `test_file` under TRITON_INTERPRET=1 and check that its tests (all but the one that
    calls this) pass: `expected_passed` of them."""
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           test_file], cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "TRITON_INTERPRET": "1", "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert f"{expected_passed} passed" in proc.stdout, proc.stdout[-2000:]
