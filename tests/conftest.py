import os

# Two cores, shared: keep each test process to one intra-op thread so runs stay comparable.
os.environ.setdefault("OMP_NUM_THREADS", "1")
try:
    import torch

    torch.set_num_threads(1)
except ImportError:  # pragma: no cover
    pass
