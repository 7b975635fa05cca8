"""Device slots for the pipeline's parallel steps (one GPU each, or a share of the CPU cores), which steps may run
side by side (``groups``), and stopping their workers with the pipeline (``workers_stop_with_us``).

A slot is a string: a CUDA device id (``"0"``), or ``"cpu:<n>"`` for a CPU worker capped at n threads.
``apply_slot`` pins the current process (and the papermill kernels it starts, which inherit the environment) to one.
"""
from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading

CPU_SLOT = "cpu:"  # a device slot "cpu:<n>" is a CPU worker limited to n threads
# glibc malloc for CPU workers: keep freed blocks in the heap instead of returning them to the kernel. By default a
# `small` training step mmaps and unmaps its big activations (the 2,048 x 1,603 logits are 13 MB) and the kernel
# zeroes fresh pages every step. The tunables below keep those pages (about half a 1-thread training's system time,
# same peak RSS; docs/experiments.md). Other C libraries ignore the variable.
MALLOC_TUNABLES = "glibc.malloc.mmap_threshold=1073741824:glibc.malloc.trim_threshold=4294967296"


def cpu_threads(slot: str) -> int:
    """Threads of a CPU slot (``"cpu:2"`` -> 2); 0 for a GPU slot."""
    return int(slot[len(CPU_SLOT):]) if slot.startswith(CPU_SLOT) else 0


def current_slot() -> str:
    """This process's slot: what ``apply_slot`` set, else its CUDA_VISIBLE_DEVICES, else ""."""
    return os.environ.get("VAELIB_DEVICE_SLOT", os.environ.get("CUDA_VISIBLE_DEVICES", ""))


def apply_slot(slot: str) -> None:
    """Pin this process, and the kernels it starts, to one GPU or to n CPU threads: papermill kernels inherit the
    environment, and torch, MKL and numba read the thread caps when they load (glibc its ``MALLOC_TUNABLES``)."""
    if slot.startswith(CPU_SLOT):
        n = str(cpu_threads(slot))
        os.environ.update(OMP_NUM_THREADS=n, MKL_NUM_THREADS=n, NUMBA_NUM_THREADS=n, CUDA_VISIBLE_DEVICES="")
        mine = os.environ.get("GLIBC_TUNABLES", "")
        if "glibc.malloc." not in mine:  # the user's own malloc tunables win
            os.environ["GLIBC_TUNABLES"] = ":".join(t for t in (mine, MALLOC_TUNABLES) if t)
    else:
        os.environ["CUDA_VISIBLE_DEVICES"] = slot
    os.environ["VAELIB_DEVICE_SLOT"] = slot


def threads_per_step(n_steps: int, n_cpus: int, n_workers: int) -> list[int]:
    """Threads for each of ``n_steps`` steps run in rounds of ``min(n_workers, n_steps)`` workers sharing ``n_cpus``
    threads: a short last round gets the idle workers' threads (5 trainings on 2 cores: two rounds of 1 thread each,
    then one step with 2 threads, not a third round that leaves a core idle)."""
    workers = min(n_workers, n_steps)
    return [max(1, n_cpus // min(workers, n_steps - (j // workers) * workers)) for j in range(n_steps)]


def cpu_threads_per_step(n_steps: int, slots: list[str]) -> list[str]:
    """Per-step CPU slots for ``n_steps`` steps sharing the threads of the CPU ``slots`` (``threads_per_step``)."""
    return [f"{CPU_SLOT}{n}" for n in threads_per_step(n_steps, sum(cpu_threads(s) for s in slots), len(slots))]


def cuda_ids() -> tuple[list[str], bool]:
    """(visible CUDA device ids, whether CUDA is usable at all)."""
    try:
        import torch

        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:
        n = 0
    visible = [d for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    return (visible[:n] if visible else [str(i) for i in range(n)]), n > 0


def cpu_slots(n_cpus: int | None = None, max_workers: int = 0) -> list[str]:
    """Parallel CPU workers for the train steps on a machine without CUDA: ``["cpu:1", "cpu:1"]`` on 2 cores.

    Side-by-side 1-thread workers beat one 2-thread training on 2 cores (docs/experiments.md): one small model
    does not use many threads well. Each worker
    gets ``n_cpus // n_workers`` threads (a short last round gets more, see ``cpu_threads_per_step``); one core gives
    [] (sequential)."""
    n = n_cpus or os.cpu_count() or 1
    workers = min(n, max_workers) if max_workers else n
    return [f"{CPU_SLOT}{n // workers}"] * workers if workers > 1 else []


def parallel_slots(n_parallel: int) -> list[str]:
    """Device slots for ``n_parallel`` train steps: several GPUs -> one each; one GPU -> [] (they share it,
    one at a time); no CUDA -> ``cpu_slots``."""
    ids, has_cuda = cuda_ids()
    if has_cuda:
        return ids if len(ids) > 1 else []
    return cpu_slots(max_workers=n_parallel)


def groups(steps: list) -> list[list]:
    """``steps`` in order, cut into groups that may run side by side: consecutive ``parallel`` steps none of which
    depends on another of its group; every other step is a group of its own."""
    out: list[list] = []
    for s in steps:
        if out and s.parallel and out[-1][-1].parallel and not set(s.depends) & {g.name for g in out[-1]}:
            out[-1].append(s)
        else:
            out.append([s])
    return out


@contextlib.contextmanager
def workers_stop_with_us():
    """While workers run, a SIGTERM to this process alone (a scheduler's kill, not Ctrl-C's process group) also
    terminates them, so none starts the next queued step; their kernels exit with them (ipykernel's parent poller)."""
    def stop(signum, frame):
        for child in multiprocessing.active_children():
            child.terminate()
        raise SystemExit(128 + signum)

    main = threading.current_thread() is threading.main_thread()  # signal handlers live in the main thread only
    previous = signal.signal(signal.SIGTERM, stop) if main else None
    try:
        yield
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)
