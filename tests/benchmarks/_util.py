"""Shared benchmark plumbing: timing by best-of-N and JSON results under results/benchmarks/."""
from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[2] / "results" / "benchmarks"


def best_time(fn, repeat: int = 5, number: int = 1) -> float:
    """Best wall time in seconds of ``number`` calls, over ``repeat`` rounds (noisy shared machines)."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - t0) / number)
    return best


def write_result(name: str, result: dict) -> Path:
    """Write ``results/benchmarks/<name>.json`` with the machine it ran on."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    result = dict(result)
    result.setdefault("machine", {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                                  "python": platform.python_version()})
    path = RESULTS / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2, sort_keys=True))
    os.replace(tmp, path)
    return path
