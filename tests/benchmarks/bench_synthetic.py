"""Synthetic corpus generation rate: the 20,000-example corpus must take <= 60 s on 2 cores (issue 2).

Times the full 20,000 examples once in this process (one core; generation is per-example numpy,
so two processes would halve it) and 2,000 examples best-of-3, and compares with the budget. The peer
is the tokenizer that consumes the examples: generating a window should cost no more than encoding it.
Writes results/benchmarks/synthetic.json.
"""
import os
import time

import numpy as np

from vaelib.data.synthetic import STYLES, generate
from vaelib.data.tokenizer import Tokenizer

from ._util import best_time, write_result


def test_synthetic_generation_rate():
    t_2k = best_time(lambda: generate(2000, seed=1), repeat=3)
    t0, c0 = time.perf_counter(), time.process_time()
    corpus = generate(20_000, seed=0)
    t_20k, cpu_20k = time.perf_counter() - t0, time.process_time() - c0  # CPU time: robust to a shared machine
    tok = Tokenizer()
    sample = corpus[::40]  # 500 windows
    t_tok = best_time(lambda: [tok.encode(p) for p in sample], repeat=3) / len(sample)
    lengths = np.array([len(tok.encode(p)) for p in sample])
    res = {
        "n_examples": 20_000, "complexity": 0.6, "cores_used": 1,
        "seconds_20k_measured": t_20k, "cpu_seconds_20k": cpu_20k, "examples_per_s_20k": 20_000 / t_20k,
        "seconds_2k_best_of_3": t_2k, "examples_per_s_2k": 2000 / t_2k,
        "budget_s_20k_on_2_cores": 60.0, "budget_ratio": 60.0 / t_20k,
        "peer": "tokenizer encode of the same windows",
        "generate_us_per_example": 1e6 * t_20k / 20_000, "encode_us_per_example": 1e6 * t_tok,
        "ratio_encode_over_generate": t_tok / (t_20k / 20_000),
        "token_length_default_tokenizer": {q: float(np.percentile(lengths, int(q[1:]))) for q in
                                           ("p5", "p25", "p50", "p75", "p95")},
        "styles": {s: sum(p.style == s for p in corpus) for s in STYLES},
        "load_avg_1min": os.getloadavg()[0],
    }
    write_result("synthetic", res)
    print(res)
    assert len(corpus) == 20_000 and len({p.source for p in corpus}) == 20_000
