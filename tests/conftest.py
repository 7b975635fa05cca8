import os

# Two cores, shared: keep each test process to one intra-op thread so runs stay comparable.
os.environ.setdefault("OMP_NUM_THREADS", "1")
try:
    import torch

    torch.set_num_threads(1)
except ImportError:  # pragma: no cover
    pass


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_model():
    """A freshly initialised ``tiny`` VAE (seed 0) in eval mode, shared by the model and generation tests."""
    from vaelib.config import get_preset
    from vaelib.model.vae import VAE

    torch.manual_seed(0)
    return VAE(get_preset("tiny").model).eval()


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """A curated synthetic dataset of 40 windows for the ``tiny`` preset (read-only: tests write elsewhere)."""
    from vaelib.config import get_preset
    from vaelib.data.curation import curate

    out = tmp_path_factory.mktemp("tiny_data")
    curate("synthetic", out, config=get_preset("tiny").data, n_examples=40, progress=False)
    return out
