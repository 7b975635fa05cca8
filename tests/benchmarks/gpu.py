"""Paper-scale throughput on whatever device is present (issue 9): training tokens/s and MFU, the projected wall
time of the four-size paper experiment, and batched KV-cached prior sampling.

    python -m tests.benchmarks.gpu [--device cuda] [--preset paper] [--latent-dim 384] [--batch-tokens 65536]
        [--steps 30] [--warmup 5] [--compile] [--n-samples 1000] [--data DIR] [--peak-tflops X]
        [--out results/benchmarks]          (``make bench-gpu``)

**The CUDA path has not been run**: the project had no GPU when this was written; only the CPU path is exercised
(``tests/test_gpu_bench_smoke.py``: tiny preset, 2 steps). Treat the first CUDA run as its test.

What it does, mirroring ``vaelib.training.fit.fit`` step for step: token-budget, length-bucketed batches
(``vaelib.data.batching.plan_batches``; ``--batch-tokens`` padded tokens, at most the preset's ``max_batch_size`` sequences),
bf16 autocast on CUDA (fp32 CE/KL, as in training), the preset's word dropout / β / free bits, backward, grad-norm
clip, AdamW (``vaelib.training.fit._make_optimizer``: fused on CUDA), optional ``torch.compile``. The first ``--warmup``
steps (compilation, allocator, cuBLAS autotuning) are not timed; every timed step is bracketed by
``torch.cuda.synchronize``. Batch shapes vary (length bucketing), so ``--compile`` may recompile inside the
timed steps; ``step_s_max`` against ``step_s_median`` shows it. Peak memory is ``torch.cuda.max_memory_allocated`` over the timed steps.

Sequences: real token streams (``vaelib.data.synthetic`` -> ``Tokenizer``). The 4-bar synthetic corpus averages only ~340
tokens, far shorter than the paper's ~1k, so by default the benchmark windows are ``--bars 12`` long (mean ~830
tokens, the tokenizer's thinning keeps them <= max_len 1024); ``--bars 4`` measures the corpus ``make report``
trains on, ``--data DIR`` a curated dataset's training split.

FLOPs (``flops_per_token``; nanoGPT's ``estimate_mfu`` convention, recomputation and padding not counted):
    6·N  +  12·d·T·n_enc  +  12·d·T·n_dec  +  12·d·k·n_dec
with N = parameters of the encoder stack + decoder stack + output head (embeddings excluded, the tied head counted
once, as nanoGPT does), T the sequence length, k the memory tokens. 6N is forward (2N) + backward (4N) of every
matmul weight once per token; 12·d·T per layer is QKᵀ and A·V (4·d·T forward, x3 with backward) over T keys for
the encoder and decoder self-attention (causal counted in full, as nanoGPT does) and over k keys for cross-attention.
Paper dims at T=1000: ~343.6 MFLOP/token. The ``strict`` figure charges the cross-attention K/V projections (which
see k memory tokens per sequence, not every token) and the latent heads per sequence instead; it is ~5 % lower.
MFU = model FLOP/s ÷ peak dense bf16 FLOP/s, where model FLOPs sum L·flops_per_token(T=L) over the *real*
(non-PAD) sequences of the timed steps: padding is wasted work and does not count.

Projection: 4 latent sizes × epochs (preset: 100) × ``--n-train`` (20k) sequences × the measured mean tokens per
sequence ÷ measured real tokens/s (training steps only: validation, checkpoints and evaluation excluded).

Generation: ``vaelib.model.generation.sample`` (grammar masks, KV cache, fp32, ``--gen-batch-size`` rows at a time) of
``--n-samples`` 4-bar prior samples. With an untrained model (default) the lengths are whatever random weights give
under the grammar; ``--run-dir`` times a trained run instead.

Writes ``<out>/gpu-<device kind>.json`` (e.g. ``gpu-cuda-h100.json``, ``gpu-cpu.json``).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import time
from pathlib import Path

import numpy as np
import torch

from vaelib.config import ModelConfig, get_preset

RESULTS = Path(__file__).resolve().parents[2] / "results" / "benchmarks"
N_SIZES = 4  # latent sizes of the paper experiment (config.LATENT_DIMS)
GOAL_MFU, GOAL_HOURS = 0.35, 3.0

# Dense bf16 tensor-core peaks (no sparsity), FLOP/s, from the vendors' data sheets; first substring match wins.
PEAK_BF16 = (("H200", 989e12), ("H100 PCIe", 756e12), ("H100", 989e12), ("A100", 312e12))


# ------------------------------------------------------------------ FLOP accounting
def stack_params(cfg: ModelConfig) -> dict[str, int]:
    """Parameter counts of the encoder stack, decoder stack, output head and latent heads, from the config alone
    (the same numbers as summing ``numel`` over ``VAE.encoder``, ``.decoder``, ``.head``; checked in the tests)."""
    d, f = cfg.d_model, cfg.d_ff
    attn = 4 * d * d + 4 * d  # q, kv (2d), out: weights + biases
    ff = 2 * d * f + f + d
    enc = cfg.n_enc_layers * (attn + ff + 2 * 2 * d)  # + 2 LayerNorms
    dec = cfg.n_dec_layers * (2 * attn + ff + 3 * 2 * d)  # self + cross attention, 3 LayerNorms
    D, k = cfg.latent_dim, cfg.n_memory
    latent = 2 * (d * D + D) + (D * k * d + k * d) + (D * d + d if cfg.z_to_input else 0)
    return {"encoder": enc, "decoder": dec, "head": cfg.vocab_size * d, "latent_heads": latent,
            "cross_kv": cfg.n_dec_layers * (2 * d * d + 2 * d)}


def flops_per_token(cfg: ModelConfig, T: float) -> dict[str, float]:
    """Training FLOPs per token at sequence length ``T`` (see the module docstring for the formula).

    Returns ``total`` (6N + attention, the issue's convention), its parts, and ``strict`` (cross-attention K/V
    projections and latent heads charged once per sequence of T tokens, not per token)."""
    p = stack_params(cfg)
    d = cfg.d_model
    six_n = 6 * (p["encoder"] + p["decoder"] + p["head"])
    attn_enc = 12 * d * T * cfg.n_enc_layers
    attn_self = 12 * d * T * cfg.n_dec_layers
    attn_cross = 12 * d * cfg.n_memory * cfg.n_dec_layers
    total = six_n + attn_enc + attn_self + attn_cross
    per_seq = 6 * (p["cross_kv"] * cfg.n_memory + p["latent_heads"])  # FLOPs that run once per sequence
    strict = total - 6 * p["cross_kv"] + per_seq / T
    return {"total": float(total), "six_n": float(six_n), "attn_encoder": float(attn_enc),
            "attn_decoder_self": float(attn_self), "attn_decoder_cross": float(attn_cross), "strict": float(strict)}


def peak_flops(device: torch.device, override_tflops: float | None = None) -> tuple[float | None, str]:
    """(peak dense bf16 FLOP/s or None if unknown, where the figure came from)."""
    if override_tflops:
        return override_tflops * 1e12, "--peak-tflops"
    if device.type != "cuda":
        return None, "unknown for this device (pass --peak-tflops)"
    name = torch.cuda.get_device_name(device)
    for key, peak in PEAK_BF16:
        if key in name:
            return peak, f"table: {key}"
    return None, f"{name} not in the table (pass --peak-tflops)"


def device_kind(device: torch.device) -> str:
    """File-name tag: ``cuda-h100``, ``cuda-a100``, ..., or ``cpu``."""
    if device.type != "cuda":
        return device.type
    name = torch.cuda.get_device_name(device)
    m = re.search(r"\b([A-Z]{1,2}\d{2,4}[A-Za-z]?)\b", name)
    return f"cuda-{(m.group(1) if m else re.sub(r'[^A-Za-z0-9]+', '-', name)).lower()}"


# ------------------------------------------------------------------ data
def synthetic_sequences(tok_config, n: int, bars: int, seed: int = 0) -> list[np.ndarray]:
    """``n`` real token streams of ``bars``-bar synthetic windows (windows over the token budget are skipped)."""
    from dataclasses import replace

    from vaelib.data.synthetic import generate_one
    from vaelib.data.tokenizer import TokenBudgetError, Tokenizer

    tk = Tokenizer(replace(tok_config, n_bars=bars))
    out, i = [], 0
    while len(out) < n and i < 4 * n + 16:
        try:
            out.append(tk.encode(generate_one(i, seed, n_bars=bars, steps_per_bar=tok_config.steps_per_bar,
                                              cc_numbers=tok_config.cc_numbers)))
        except TokenBudgetError:
            pass
        i += 1
    return out


def batches_forever(seqs: list[np.ndarray], batch_tokens: int, max_batch_size: int, seed: int = 0):
    """Yield (ids LongTensor (B, T), real lengths) from the training batch planner, epoch after epoch."""
    from vaelib.data.batching import pad_batch, plan_batches

    lengths = [len(s) for s in seqs]
    epoch = 0
    while True:
        for b in plan_batches(lengths, batch_tokens, max_batch_size, seed=seed, epoch=epoch):
            yield pad_batch([seqs[j] for j in b]), [lengths[j] for j in b]
        epoch += 1


# ------------------------------------------------------------------ measurements
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_training(config, seqs, device, steps: int, warmup: int, compile_: bool, peak: float | None) -> dict:
    """Time ``steps`` optimizer steps (after ``warmup`` untimed ones) as ``vaelib.training.fit.fit`` takes them."""
    from vaelib.model.vae import VAE
    from vaelib.model.objective import elbo
    from vaelib.training.fit import _make_optimizer

    t, mc = config.train, config.model
    torch.manual_seed(t.seed)
    model = VAE(mc).to(device).train()
    opt = _make_optimizer(model, config, device)
    net = torch.compile(model) if compile_ else model
    use_bf16 = device.type == "cuda" and t.bf16
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if use_bf16 else contextlib.nullcontext
    beta = t.beta_max

    def step(ids) -> None:
        with autocast():
            out = net(ids, word_dropout=t.word_dropout)
        parts = elbo(out["logits"], out["targets"], out["mu"], out["logvar"], beta, t.free_bits)
        if not torch.isfinite(parts["loss"]):  # fit() makes this host sync every step too
            raise FloatingPointError("non-finite loss in the benchmark")
        parts["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)

    feed = batches_forever(seqs, t.batch_tokens, t.max_batch_size, seed=t.seed)
    t0 = time.perf_counter()
    for _ in range(warmup):
        step(next(feed)[0].to(device))
    _sync(device)
    warmup_s = time.perf_counter() - t0
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times, real, padded, model_flops, model_flops_strict, lens = [], 0, 0, 0.0, 0.0, []
    for _ in range(steps):
        ids, lengths = next(feed)
        ids = ids.to(device, non_blocking=True)
        _sync(device)
        s0 = time.perf_counter()
        step(ids)
        _sync(device)
        times.append(time.perf_counter() - s0)
        real += sum(lengths)
        padded += ids.numel()
        lens += lengths
        for L in lengths:
            f = flops_per_token(mc, L)
            model_flops += L * f["total"]
            model_flops_strict += L * f["strict"]
    total_s = sum(times)
    res = {"steps_timed": steps, "warmup_steps": warmup, "warmup_s": warmup_s, "timed_s": total_s,
           "step_s_mean": total_s / steps, "step_s_median": float(np.median(times)), "step_s_max": max(times),
           "tokens_per_s": real / total_s, "padded_tokens_per_s": padded / total_s, "padding_frac": 1 - real / padded,
           "sequences_per_step": len(lens) / steps, "mean_batch_len": float(np.mean(lens)),
           "model_tflops_per_s": model_flops / total_s / 1e12, "bf16_autocast": use_bf16, "compiled": compile_,
           "fused_adamw": device.type == "cuda", "n_params": model.n_params(),
           "peak_memory_gib": (torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None)}
    res["mfu"] = model_flops / total_s / peak if peak else None
    res["mfu_strict"] = model_flops_strict / total_s / peak if peak else None
    del model, net, opt
    return res


def measure_generation(config, device, n: int, batch_size: int, run_dir=None, seed: int = 0) -> dict:
    """Samples/s of ``n`` KV-cached, grammar-masked 4-bar prior samples (``vaelib.model.generation.sample``)."""
    from vaelib.model.generation import decode, prior, sample
    from vaelib.model.vae import VAE
    from vaelib.data.tokenizer import Tokenizer

    if run_dir:
        from vaelib.model.checkpoint import load_model

        model, config = load_model(run_dir, device=str(device))
    else:
        torch.manual_seed(seed)
        model = VAE(config.model).to(device).eval()
    tk = Tokenizer(config.data.tokenizer)
    decode(model, prior(model, 1, seed + 99), max_len=16, tokenizer=tk)  # warm-up: kernels, allocator
    _sync(device)
    t0 = time.perf_counter()
    seqs = sample(model, n, seed=seed, batch_size=batch_size, tokenizer=tk)  # ends with a host copy: synced
    sec = time.perf_counter() - t0
    lens = np.array([len(s) for s in seqs])
    return {"n_samples": n, "batch_size": batch_size, "seconds": sec, "samples_per_s": n / sec,
            "tokens_per_s": float(lens.sum()) / sec, "mean_len": float(lens.mean()), "max_len": int(lens.max()),
            "n_bars": config.data.tokenizer.n_bars, "trained_model": bool(run_dir), "dtype": "float32",
            "kv_cache": True, "grammar": True}


def project(mean_len: float, tokens_per_s: float, epochs: int, n_train: int) -> dict:
    """Wall time of training all four latent sizes from the measured rate (training steps only)."""
    tokens = N_SIZES * epochs * n_train * mean_len
    hours = tokens / tokens_per_s / 3600
    return {"tokens_total": tokens, "epochs": epochs, "n_train": n_train, "mean_tokens_per_sequence": mean_len,
            "hours_one_gpu": hours, "hours_four_gpus_one_size_each": hours / N_SIZES, "goal_hours": GOAL_HOURS,
            "meets_goal": hours <= GOAL_HOURS}


# ------------------------------------------------------------------ CLI
def write_json(out_dir, name: str, result: dict) -> Path:
    """Atomic ``<out_dir>/<name>.json`` with the machine it ran on."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result = {**result, "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                                    "python": platform.python_version(), "torch": torch.__version__}}
    path = out / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2, sort_keys=True))
    os.replace(tmp, path)
    return path


def main(argv=None) -> Path:
    p = argparse.ArgumentParser(prog="python -m tests.benchmarks.gpu", description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default=None, help="cuda, cpu, ... (default: cuda if available, else cpu)")
    p.add_argument("--preset", default="paper")
    p.add_argument("--latent-dim", type=int, default=384)
    p.add_argument("--batch-tokens", type=int, default=None, help="padded tokens per step (default: the preset's)")
    p.add_argument("--steps", type=int, default=30, help="timed optimizer steps")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 5, 10 with --compile)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--bars", type=int, default=12, help="bars per synthetic window (12 -> ~830 tokens, 4 -> ~340)")
    p.add_argument("--data", default=None, help="curated dataset folder: use its training split instead")
    p.add_argument("--n-train", type=int, default=20000, help="training sequences per epoch in the projection")
    p.add_argument("--n-samples", type=int, default=1000, help="prior samples to generate (0 skips generation)")
    p.add_argument("--gen-batch-size", type=int, default=250)
    p.add_argument("--run-dir", default=None, help="a trained run to sample from (default: untrained weights)")
    p.add_argument("--peak-tflops", type=float, default=None, help="peak dense bf16 TFLOP/s (overrides the table)")
    p.add_argument("--out", default=str(RESULTS))
    a = p.parse_args(argv)

    device = torch.device(a.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    config = get_preset(a.preset, latent_dim=a.latent_dim, batch_tokens=a.batch_tokens)
    warmup = a.warmup if a.warmup is not None else (10 if a.compile else 5)
    peak, peak_src = peak_flops(device, a.peak_tflops)
    t = config.train
    if a.data:
        from vaelib.data.batching import load_token_split

        seqs, source = load_token_split(a.data, "train"), f"curated: {a.data}"
    else:
        n_pool = min((warmup + a.steps) * t.max_batch_size, 20000)  # enough for one pass without repeats
        seqs = synthetic_sequences(config.data.tokenizer, n_pool, a.bars, seed=config.data.seed)
        source = f"synthetic, {a.bars}-bar windows"
    seqs = [s for s in seqs if len(s) - 1 <= config.model.max_len]
    mean_len = float(np.mean([len(s) for s in seqs]))

    fpt = flops_per_token(config.model, 1000.0)
    paper = flops_per_token(get_preset("paper").model, 1000.0)
    print(f"FLOPs/token at T=1000: paper dims {paper['total'] / 1e6:.1f} M (issue 9: ~343 M; strict "
          f"{paper['strict'] / 1e6:.1f} M); {a.preset} dims {fpt['total'] / 1e6:.1f} M; {a.preset} at the data's "
          f"mean T={mean_len:.0f}: {flops_per_token(config.model, mean_len)['total'] / 1e6:.1f} M")
    train = measure_training(config, seqs, device, a.steps, warmup, a.compile, peak)
    proj = project(mean_len, train["tokens_per_s"], t.epochs, a.n_train)
    gen = measure_generation(config, device, a.n_samples, a.gen_batch_size, a.run_dir) if a.n_samples else None
    result = {
        "device": str(device), "device_name": (torch.cuda.get_device_name(device) if device.type == "cuda"
                                               else platform.processor() or "cpu"),
        "cuda_path_tested": False,  # see the module docstring: written without a GPU
        "preset": a.preset, "latent_dim": a.latent_dim, "batch_tokens": t.batch_tokens,
        "max_batch_size": t.max_batch_size, "data": source, "n_sequences": len(seqs), "mean_tokens": mean_len,
        "peak_flops": peak, "peak_source": peak_src,
        "flops_per_token_T1000": fpt, "flops_per_token_mean_T": flops_per_token(config.model, mean_len),
        "flops_formula": "6*(N_enc+N_dec+N_head) + 12*d*T*(n_enc+n_dec) + 12*d*k*n_dec",
        "train": train, "projection": proj, "generation": gen, "goal_mfu": GOAL_MFU,
        "torch_threads": torch.get_num_threads(),
    }
    path = write_json(a.out, f"gpu-{device_kind(device)}", result)
    mfu = f"{train['mfu']:.1%}" if train["mfu"] is not None else "n/a (no peak figure)"
    print(f"train: {train['tokens_per_s']:,.0f} tokens/s, {train['step_s_median'] * 1e3:.1f} ms/step, MFU {mfu}, "
          f"peak mem {train['peak_memory_gib']} GiB")
    print(f"projection: {proj['hours_one_gpu']:.2f} h on one device "
          f"({proj['hours_four_gpus_one_size_each']:.2f} h with one latent size per device); goal <= {GOAL_HOURS} h")
    if gen:
        print(f"generation: {gen['samples_per_s']:.2f} samples/s ({gen['mean_len']:.0f} tokens each)")
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    main()
