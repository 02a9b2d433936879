"""Shared test settings: deterministic seeds and double precision where quadrature is checked."""

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
