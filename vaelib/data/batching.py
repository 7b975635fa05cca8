"""Token arrays -> padded training batches: length bucketing under a token budget, deterministic and sharded.

A batch holds sequences of similar length so padding stays small (padding every window to the 1,024-token
maximum wastes up to a third of the compute). Its cost is ``n_sequences x longest_length`` padded tokens,
kept ``<= batch_tokens``, with at most ``max_batch_size`` sequences.

Determinism: the batch plan of an epoch is a pure function of (lengths, seed, epoch): sequences are sorted by
length (ties broken by a seeded shuffle), cut greedily into batches, and the batch order is shuffled. Because the
sorted lengths do not depend on the tie-break, the *number* of batches per epoch is the same every epoch, which is
what the schedules need. Ranks of a distributed run take every ``world_size``-th batch of the same plan (after
padding the plan by repetition, like ``DistributedSampler``), so they take equal numbers of steps.
"""
from __future__ import annotations

import numpy as np
import torch

from vaelib.data.dataset import load_split
from vaelib.data.tokenizer import PAD as PAD_ID


def load_token_split(data_dir, split: str) -> list[np.ndarray]:
    """Token id arrays (BOS..EOS) of one split of a curated dataset folder (``vaelib.data.curation`` format)."""
    return [np.asarray(a, dtype=np.int64) for a in load_split(data_dir, split)]


def pad_batch(seqs: list[np.ndarray], pad_id: int = PAD_ID) -> torch.Tensor:
    """list of 1-D int arrays -> LongTensor (B, T_max), right-padded with ``pad_id``."""
    T = max(len(s) for s in seqs)
    out = np.full((len(seqs), T), pad_id, dtype=np.int64)
    for i, s in enumerate(seqs):
        out[i, :len(s)] = s
    return torch.from_numpy(out)


def _cut(order: np.ndarray, lengths: np.ndarray, batch_tokens: int, max_batch_size: int) -> list[list[int]]:
    """Greedy cut of length-sorted indices into batches with n x max_len <= batch_tokens, n <= max_batch_size."""
    batches, cur, cur_max = [], [], 0
    for i in order:
        L = int(lengths[i])
        new_max = max(cur_max, L)
        if cur and ((len(cur) + 1) * new_max > batch_tokens or len(cur) >= max_batch_size):
            batches.append(cur)
            cur, new_max = [], L
        cur.append(int(i))
        cur_max = new_max
    if cur:
        batches.append(cur)
    return batches  # a sequence longer than batch_tokens still gets a batch of its own


def plan_batches(lengths, batch_tokens: int, max_batch_size: int, seed: int = 0, epoch: int = 0,
                 shuffle: bool = True, rank: int = 0, world_size: int = 1) -> list[list[int]]:
    """This rank's batches (lists of sequence indices) for one epoch, in training order."""
    lengths = np.asarray(lengths)
    n = len(lengths)
    if n == 0:
        return []
    rng = np.random.default_rng([seed, epoch])
    tie = rng.permutation(n) if shuffle else np.arange(n)
    order = np.lexsort((tie, lengths))  # by length, ties in seeded random order
    batches = _cut(order, lengths, batch_tokens, max_batch_size)
    if shuffle:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    if world_size > 1:
        n_per_rank = -(-len(batches) // world_size)
        batches = (batches * world_size)[:n_per_rank * world_size]  # pad by repetition, equal steps per rank
        batches = batches[rank::world_size]
    return batches


def steps_per_epoch(lengths, batch_tokens: int, max_batch_size: int, world_size: int = 1) -> int:
    """Batches each rank takes per epoch (independent of seed and epoch)."""
    return len(plan_batches(lengths, batch_tokens, max_batch_size, seed=0, epoch=0, shuffle=False,
                            rank=0, world_size=world_size))


def iterate_batches(seqs: list[np.ndarray], batches: list[list[int]], start: int = 0):
    """Yield (index_in_epoch, LongTensor (B, T)) from batch ``start`` on (resume skips the ones done)."""
    for i in range(start, len(batches)):
        yield i, pad_batch([seqs[j] for j in batches[i]])
