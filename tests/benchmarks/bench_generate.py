"""Generation throughput: KV-cached incremental decoding vs recomputing the whole prefix at every token.

`small` dimensions with max_len=1024, batch 1, greedy argmax, fixed length (no EOS stop, so both decode exactly
L tokens). The recomputation path is ``decode(z, prefix)[:, -1]``, i.e. what ``nn.TransformerDecoder`` forces.
Goal: >= 10x at 1,024 tokens.
"""
import time
from dataclasses import replace

import torch

from tests.benchmarks._util import best_time, write_result
from vaelib.config import get_preset
from vaelib.model.vae import VAE


@torch.no_grad()
def cached(model, z, L):
    state = model.start(z, L)
    tok = torch.ones(z.shape[0], dtype=torch.long)  # BOS
    for _ in range(L - 1):
        tok = model.step(tok, state).argmax(-1)
    return tok


@torch.no_grad()
def recomputed(model, z, L):
    out = torch.ones(z.shape[0], 1, dtype=torch.long)
    for _ in range(L - 1):
        out = torch.cat([out, model.decode(z, out)[:, -1].argmax(-1)[:, None]], dim=1)
    return out[:, -1]


def test_kv_cache_vs_recompute():
    torch.manual_seed(0)
    cfg = replace(get_preset("small").model, max_len=1024)
    model = VAE(cfg).eval()
    z = torch.randn(1, cfg.latent_dim)
    result = {"batch": 1, "threads": torch.get_num_threads(), "config": "small dims, max_len=1024"}
    for L in (256, 1024):
        assert torch.equal(cached(model, z, 64), recomputed(model, z, 64))  # same tokens either way
        t_cache = best_time(lambda: cached(model, z, L), repeat=3)
        t0 = time.perf_counter()
        recomputed(model, z, L)  # once: it is the slow one
        t_full = time.perf_counter() - t0
        result[f"cached_tokens_per_sec_{L}"] = (L - 1) / t_cache
        result[f"recompute_tokens_per_sec_{L}"] = (L - 1) / t_full
        result[f"speedup_{L}"] = t_full / t_cache
    result["goal_speedup_1024"] = 10.0
    write_result("generate", result)
    print(result)
