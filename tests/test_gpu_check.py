"""benchmarks/gpu_check.sh in its CPU form (the tiny shape, one example), so that the GPU check
cannot rot between GPU runs: every line must say ok. Its torchrun line is the CI test of
``reproduce --nproc 2`` against one process on a cache kept per rank (gloo)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from tests.conftest import ROOT

CHECKS = ("repro[legal_sliding]", "probe[normalization]", "torchrun[2v1]", "speed[batch=32]", "total")


def run_check(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=900, env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable})


def test_the_cpu_form_passes_every_check():
    proc = run_check("--device", "cpu")
    lines = proc.stdout.strip().splitlines()[1:]
    assert [line.split()[0] for line in lines] == list(CHECKS), proc.stdout + proc.stderr
    assert all(line.split()[1] == "ok" for line in lines), proc.stdout
    assert proc.returncode == 0
    torchrun = next(line for line in lines if line.startswith("torchrun"))
    assert "gloo" in torchrun and "REPRO004 for [2] ranks" in torchrun


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks what a machine without CUDA prints")
def test_no_cuda_is_a_failure_never_a_pass():
    proc = run_check("--device", "cuda", "--only", "speed")
    assert proc.returncode == 1
    status = [line.split()[1] for line in proc.stdout.strip().splitlines()[1:]]
    assert status and set(status) == {"FAIL"}, proc.stdout
