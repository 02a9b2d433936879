"""The accuracy harness registers the peers' adapters as models; other tests iterate over
the model registry, so the adapters are unregistered once this package's tests are done."""

import pytest


@pytest.fixture(autouse=True, scope="package")
def _unregister_peer_models():
    yield
    from geo_neuralop.models.registry import list_models, unregister_model

    for name in ("nop_fno", "nop_local_no", "nop_gino", "th_sfno", "th_lsno", "th_s2unet"):
        if name in list_models():
            unregister_model(name)
