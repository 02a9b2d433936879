"""Shared test settings: deterministic seeds and double precision where quadrature is checked."""

import contextlib
import os

import numpy as np
import pytest
import torch

# One intra-op thread by default: the suite's tensors are small, and on a shared 2-core
# machine a second thread per process makes them tens of times slower under load.
# GEO_NEURALOP_TEST_THREADS overrides it.
torch.set_num_threads(int(os.environ.get("GEO_NEURALOP_TEST_THREADS", "1")))


@pytest.fixture(autouse=True)
def _fixed_seeds():
    torch.manual_seed(0)
    np.random.seed(0)  # noqa: NPY002 (code under test may use the legacy global RNG)
    yield


@pytest.fixture
def float64():
    """Run a test with float64 as torch's default dtype, restoring the previous default."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def observed_order(h, err):
    """Least-squares slope of log(err) against log(h)."""
    return float(np.polyfit(np.log(np.asarray(h)), np.log(np.asarray(err)), 1)[0])


@contextlib.contextmanager
def memory_cap(extra_bytes: int):
    """Cap this process's address space at its current size plus ``extra_bytes`` for the
    block (Linux), so a regression that allocates tens of GB fails with a MemoryError or
    RuntimeError instead of taking the machine down; the previous limit is restored."""
    import resource

    try:
        with open("/proc/self/status", encoding="ascii") as status:
            size = next(int(line.split()[1]) * 1024 for line in status
                        if line.startswith("VmSize:"))
    except (OSError, StopIteration):
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = size + int(extra_bytes)
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
