"""Smoke test of the GPU benchmark script (tests/benchmarks/gpu.py) on CPU with the tiny preset, and its FLOP count.

Only the CPU path runs here; the CUDA path (bf16 autocast, fused AdamW, synchronize timing, peak memory) is untested
on this project's machines.
"""
import dataclasses
import importlib.util
import json
from pathlib import Path

import pytest

from vaelib.config import get_preset
from vaelib.model.vae import VAE

# loaded by path: ``tests`` is not a package, so ``tests.benchmarks`` imports only when the repo root is on sys.path
_SPEC = importlib.util.spec_from_file_location("gpu_bench", Path(__file__).parent / "benchmarks" / "gpu.py")
gpu = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(gpu)


def test_flops_per_token_matches_the_issue_figure_for_paper_dims():
    f = gpu.flops_per_token(get_preset("paper", latent_dim=384).model, 1000)
    assert f["total"] == pytest.approx(343e6, rel=0.10)  # issue 9: "about 343 MFLOP/token at T=1000"
    assert f["total"] == pytest.approx(f["six_n"] + f["attn_encoder"] + f["attn_decoder_self"]
                                       + f["attn_decoder_cross"])
    assert f["strict"] < f["total"]  # cross-attention K/V runs on k memory tokens, not every token


@pytest.mark.parametrize("preset", ["tiny", "small", "paper"])
def test_param_count_from_config_equals_the_built_model(preset):
    # the FLOP formula counts the paper's architecture (plain embedding, mean pool, no notes head); the recommended
    # extras (factorised table, structural tables, beat slots, notes head and its plan, the CC plan, the CC lanes'
    # value gates) are left out of it
    cfg = dataclasses.replace(get_preset(preset).model, embedding="plain", structural=False, notes_head=False,
                              plan_memory=False, plan_input=False, cc_head=False, pool="mean", cc_plan=False,
                              cc_copy=False, cc_pool=False, cc_lane_values=False)
    m = VAE(cfg)
    count = gpu.stack_params(cfg)
    assert count["encoder"] == sum(p.numel() for p in m.encoder.parameters())
    assert count["decoder"] == sum(p.numel() for p in m.decoder.parameters())
    assert count["head"] == m.head.weight.numel()
    latent = [m.to_mu, m.to_logvar, m.to_memory] + ([m.to_input] if m.to_input is not None else [])
    assert count["latent_heads"] == sum(p.numel() for mod in latent for p in mod.parameters())
    assert count["cross_kv"] == sum(p.numel() for b in m.decoder for p in b.cross_attn.kv.parameters())


def test_cpu_run_writes_the_result_json(tmp_path, capsys):
    path = gpu.main(["--device", "cpu", "--preset", "tiny", "--latent-dim", "16", "--steps", "2", "--warmup", "1",
                     "--bars", "4", "--n-samples", "4", "--gen-batch-size", "4", "--peak-tflops", "1",
                     "--out", str(tmp_path)])
    assert path == tmp_path / "gpu-cpu.json"
    r = json.loads(path.read_text())
    for key in ("device", "preset", "mean_tokens", "flops_per_token_T1000", "train", "projection", "generation",
                "peak_flops", "cuda_path_tested", "machine"):
        assert key in r
    tr = r["train"]
    assert tr["steps_timed"] == 2 and tr["tokens_per_s"] > 0 and tr["step_s_median"] > 0
    assert 0 < tr["mfu"] < 1 and tr["padded_tokens_per_s"] >= tr["tokens_per_s"]
    assert tr["peak_memory_gib"] is None and tr["bf16_autocast"] is False  # CPU: no autocast, no CUDA memory
    pr = r["projection"]
    assert pr["hours_one_gpu"] == pytest.approx(4 * pr["epochs"] * 20000 * r["mean_tokens"] / tr["tokens_per_s"] / 3600)
    g = r["generation"]
    assert g["n_samples"] == 4 and g["samples_per_s"] > 0 and 2 <= g["mean_len"] <= 512
    assert "FLOPs/token at T=1000" in capsys.readouterr().out
