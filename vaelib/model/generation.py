"""Decoding z into performances: batched KV-cached sampling under the event grammar.

``decode`` turns latent vectors into token ids (BOS ... EOS) with temperature, top-k and
top-p filtering and the grammar masks of ``vaelib.data.grammar``; ``sample`` draws z from the
prior N(0, I); ``reconstruct`` decodes mu(x) greedily; ``slerp``/``interpolate`` walk
between latent vectors. The CLI writes MIDI (with every CC) and 44.1 kHz WAV files::

    python -m vaelib.model.generation --run-dir RUN --n 16 --out DIR [--temperature 1.0] [--top-k 0]
        [--top-p 1.0] [--seed 0] [--no-grammar] [--monophonic]
        [--fitted-prior DATA_DIR | --learned-prior [DATA_DIR] [--learned-prior-steps N]]

Without the grammar the output still decodes to a valid performance: the tokenizer's
decode is total, and EOS is forced at ``max_len``.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vaelib.config import TokenizerConfig
from vaelib.controllers import load_cc_map
from vaelib.data.dataset import load_split
from vaelib.data.grammar import Grammar
from vaelib.data.midi_write import clean_name, write_midi
from vaelib.data.performance import Performance
from vaelib.data.tokenizer import BOS, EOS, PAD, Tokenizer
from vaelib.model.checkpoint import load_model
from vaelib.model.encoding import encode_split, fitted_prior
from vaelib.model.latent_prior import PRIOR_FILE, fit_to_model, load_slot_prior
from vaelib.synth import render
from vaelib.synth.audio import write_wav


def tokenizer_for(model, tokenizer: Tokenizer | None = None) -> Tokenizer:
    """The tokenizer whose layout the model speaks (default layout if none is given)."""
    tk = tokenizer or Tokenizer(TokenizerConfig())
    if tk.vocab_size != model.config.vocab_size:
        raise ValueError(f"tokenizer has {tk.vocab_size} ids, model {model.config.vocab_size}; pass the run's tokenizer")
    return tk


def filter_logits(logits: torch.Tensor, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """(B, V) logits (-inf = forbidden) -> tempered logits with everything outside the top-k
    and outside the smallest nucleus of mass >= top_p set to -inf (the best token always stays)."""
    if temperature <= 0:
        raise ValueError("temperature must be > 0 (use greedy=True for argmax)")
    logits = logits.float() / temperature
    if top_k and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        srt, idx = torch.sort(logits, dim=-1, descending=True)
        probs = torch.softmax(srt, dim=-1)
        drop = (torch.cumsum(probs, dim=-1) - probs) >= top_p  # mass before this token already covers top_p
        logits = logits.scatter(-1, idx, srt.masked_fill(drop, float("-inf")))
    return logits


def event_levels(tk: Tokenizer, device=None) -> torch.Tensor:
    """(2, V) the levels of the event hierarchy for ``argmax_by_event``: row 0 the token's kind (special, velocity,
    note on, note off, time shift, CC), row 1 its kind and CC lane (one group per lane; one per other kind)."""
    kind = torch.as_tensor(tk._type_of, dtype=torch.long, device=device)
    ids = torch.arange(tk.vocab_size, device=device)
    lane = torch.where(ids >= tk.cc0, (ids - tk.cc0) // 128, 0)
    return torch.stack([kind, kind * (tk.n_cc + 1) + lane])


def argmax_by_event(logits: torch.Tensor, levels: torch.Tensor, values: torch.Tensor | None = None,
                    window: int = 0) -> torch.Tensor:
    """(B, V) logits -> (B,) ids: the most probable event kind first, then (for CCs) the most probable lane within
    it, then the most probable token within that.

    Why not the plain argmax: a kind's probability is split over its values (32 velocity bins start a note,
    1,280 CC ids), so where "a note starts" is the likeliest event, one CC value can still beat every single
    velocity bin, and a token-level argmax writes a window of CCs with no note (measured on the ``small`` models:
    most greedy reconstructions held one note, at the last step). This is the chain-rule argmax
    argmax P(kind), argmax P(lane | kind), argmax P(token | lane).

    Two other ways to make the last choice for CC tokens (``values`` (V,), from ``cc_values``, marks them):

    - ``window`` > 0: the allowed value whose neighbourhood of ``window`` values either side holds the most of the
      lane's probability, the mode of the value distribution at a coarser resolution. A lane's value distribution
      is often a broad hump with jagged tops, and its plain argmax hops between neighbouring tops from one step to
      the next: a jitter the data does not have;
    - otherwise the allowed value nearest the lane's expected value E[v | lane]: the decision with the least
      expected squared error, the error CC-ME measures, which hedges towards the middle of a spread-out lane.

    Notes, time shifts and velocities keep the argmax."""
    p = torch.softmax(logits.float(), dim=-1)  # (B, V); forbidden ids (-inf) get 0
    keep = torch.ones_like(p, dtype=torch.bool)
    for group in levels:  # (V,) group id of each token at this level
        mass = torch.zeros(p.shape[0], int(group.max()) + 1, dtype=p.dtype, device=p.device)
        mass.index_add_(1, group, p * keep)
        keep &= group[None] == mass.argmax(-1, keepdim=True)
    ids = logits.masked_fill(~keep, float("-inf")).argmax(-1)
    if values is None:
        return ids
    has_value = values[ids] >= 0  # (B,) the chosen lane is a CC lane
    q = p * keep  # the chosen lane's probabilities (0 elsewhere and where forbidden)
    if window > 0:  # a lane's 128 ids are contiguous and q is 0 outside it, so the sums never mix two lanes
        box = torch.ones(1, 1, 2 * window + 1, dtype=q.dtype, device=q.device)
        near = F.conv1d(F.pad(q[:, None], (window, window)), box)[:, 0]  # (B, V) mass within +-window
        return torch.where(has_value, near.masked_fill(~(keep & (p > 0)), -1.0).argmax(-1), ids)
    expected = (q * values.clamp_min(0)).sum(-1) / q.sum(-1).clamp_min(1e-30)  # (B,)
    cost = (values[None] - expected[:, None]).abs().masked_fill(~(keep & (p > 0)), float("inf"))
    return torch.where(has_value, cost.argmin(-1), ids)


# How greedy decoding picks a CC's value within its chosen lane (``argmax_by_event``): "window", the centre of the
# likeliest run of 2 * CC_WINDOW + 1 values (the default); "mode", the likeliest single value; "mean", the value
# nearest the lane's expected value.
CC_VALUES = ("window", "mode", "mean")
CC_WINDOW = 2


def cc_values(tk: Tokenizer, device=None) -> torch.Tensor:
    """(V,) float: each CC id's value 0..127, -1 for every other id (``argmax_by_event``'s ``values``)."""
    ids = torch.arange(tk.vocab_size, device=device)
    return torch.where(ids >= tk.cc0, ((ids - tk.cc0) % 128).float(), torch.full_like(ids, -1, dtype=torch.float))


def draw(logits: torch.Tensor, generator: torch.Generator | None = None, greedy: bool = False,
         levels: torch.Tensor | None = None, values: torch.Tensor | None = None, window: int = 0) -> torch.Tensor:
    """(B, V) filtered logits -> (B,) token ids. ``greedy`` takes the argmax (``argmax_by_event`` when the event
    ``levels`` are given). Sampling uses one uniform per row by inverse CDF, so two decoders fed the same
    generator draw the same tokens from the same distributions."""
    if greedy:
        return argmax_by_event(logits, levels, values, window) if levels is not None else logits.argmax(-1)
    best = logits.argmax(-1)
    dev = generator.device if generator is not None else logits.device
    u = torch.rand(logits.shape[0], generator=generator, device=dev).to(logits.device)
    cdf = torch.cumsum(torch.softmax(logits, dim=-1), dim=-1)  # (B, V)
    tok = torch.searchsorted(cdf, (u * cdf[:, -1])[:, None], right=True)[:, 0].clamp(max=logits.shape[-1] - 1)
    ok = torch.isfinite(logits.gather(1, tok[:, None]))[:, 0]  # rounding at the top end can overshoot
    return torch.where(ok, tok, best)


class _Plain:
    """The no-grammar mask: anything goes until EOS, which is forced at ``max_len``."""

    def __init__(self, vocab_size: int, batch_size: int, max_len: int, device):
        self.ids = torch.arange(vocab_size, device=device)[None]
        self.length = torch.ones(batch_size, dtype=torch.long, device=device)
        self.done = torch.zeros(batch_size, dtype=torch.bool, device=device)
        self.max_len = max_len

    def allowed(self) -> torch.Tensor:
        last = (self.max_len - self.length <= 1)[:, None]
        mask = torch.where(last, self.ids == EOS, torch.ones_like(self.ids, dtype=torch.bool))
        return torch.where(self.done[:, None], self.ids == PAD, mask)

    def update(self, tokens: torch.Tensor) -> None:
        self.length += (~self.done).long()
        self.done |= tokens == EOS

    def keep_rows(self, keep: torch.Tensor) -> None:
        self.length, self.done = self.length[keep], self.done[keep]


@torch.no_grad()
def _decode_batch(model, z, tk, *, greedy, temperature, top_k, top_p, grammar, monophonic, max_len,
                  generator, use_cache, cc_value) -> list[np.ndarray]:
    B, dev = z.shape[0], z.device
    rules = (Grammar(tk, B, max_len=max_len, monophonic=monophonic, device=dev) if grammar
             else _Plain(model.config.vocab_size, B, max_len, dev))
    out = torch.full((B, max_len), PAD, dtype=torch.long, device=dev)
    out[:, 0] = BOS
    levels = event_levels(tk, dev) if greedy else None
    values = cc_values(tk, dev) if greedy and cc_value != "mode" else None
    window = CC_WINDOW if cc_value == "window" else 0
    state = model.start(z, max_len=max_len) if use_cache else None
    rows = torch.arange(B, device=dev)  # the rows of `out` still decoding
    for t in range(1, max_len):
        if use_cache:
            logits = model.step(out[rows, t - 1], state)  # (rows, V)
        else:
            logits = model.decode(z, out[rows, :t])[:, -1]  # recompute the whole prefix
        logits = logits.float().masked_fill(~rules.allowed(), float("-inf"))
        if not greedy:
            logits = filter_logits(logits, temperature, top_k, top_p)
        tok = torch.where(rules.done, PAD, draw(logits, generator, greedy, levels, values, window))
        out[rows, t] = tok
        rules.update(tok)
        if bool(rules.done.all()):
            break
        if greedy and int(rules.done.sum()) >= max(8, len(rows) // 4):
            # drop finished rows from the batch (a few % of a greedy decode of 240 rows). Greedy only: sampling
            # draws one uniform per row of the batch, so dropping rows would change which uniform the others get
            keep = ~rules.done
            rows, z = rows[keep], z[keep]
            rules.keep_rows(keep)
            if state is not None:
                state.keep_rows(keep)
    seqs = []
    for row in out.cpu().numpy():
        end = np.nonzero(row == EOS)[0]
        seqs.append(row[: end[0] + 1] if len(end) else np.append(row[row != PAD], EOS))
    return seqs


def decode(model, z, *, greedy: bool = False, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
           grammar: bool = True, monophonic: bool = False, max_len: int | None = None,
           generator: torch.Generator | None = None, batch_size: int = 64, tokenizer: Tokenizer | None = None,
           use_cache: bool = True, cc_value: str = "window") -> list[np.ndarray]:
    """Latent vectors z (N, D) -> N int64 id arrays ``BOS ... EOS``.

    ``greedy`` decodes deterministically with the event-level argmax (``argmax_by_event``); otherwise tokens are
    sampled at ``temperature`` after top-k / top-p filtering. With ``greedy``, ``cc_value`` picks each CC's value
    within its chosen lane (``CC_VALUES``; see ``argmax_by_event``): ``"window"`` the centre of the likeliest
    ``2 * CC_WINDOW + 1`` neighbouring values, ``"mode"`` the likeliest value, ``"mean"`` the allowed value nearest
    the expected one (the least expected squared error).

    ``max_len`` (tokens incl. BOS/EOS) defaults to the smaller of the model's and the
    tokenizer's budget. ``use_cache=False`` recomputes the full prefix at every step (the
    reference the KV cache is tested against). ``tokenizer`` gives the id layout for the
    grammar (default: the default TokenizerConfig layout, checked against the vocab size).
    """
    if cc_value not in CC_VALUES:
        raise ValueError(f"cc_value must be one of {CC_VALUES}, got {cc_value!r}")
    model.eval()
    tk = tokenizer_for(model, tokenizer)
    z = torch.as_tensor(z, dtype=torch.float32, device=next(model.parameters()).device)
    z = z.reshape(-1, model.config.latent_dim)
    max_len = min(max_len or tk.config.max_len, tk.config.max_len, model.config.max_len)
    seqs: list[np.ndarray] = []
    for i in range(0, len(z), batch_size):
        seqs += _decode_batch(model, z[i:i + batch_size], tk, greedy=greedy, temperature=temperature, top_k=top_k,
                              top_p=top_p, grammar=grammar, monophonic=monophonic, max_len=max_len,
                              generator=generator, use_cache=use_cache, cc_value=cc_value)
    return seqs


def prior(model, n: int, seed: int = 0) -> torch.Tensor:
    """(n, latent_dim) draws from N(0, I), reproducible from ``seed``."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, model.config.latent_dim, generator=g)


def sample(model, n: int, seed: int = 0, z: torch.Tensor | None = None, **kw) -> list[np.ndarray]:
    """n sequences decoded from z ~ N(0, I) (or from the given ``z`` (n, D), e.g. ``encoding.fitted_prior``'s);
    ``seed`` fixes both z and the token draws."""
    g = torch.Generator(device=next(model.parameters()).device).manual_seed(seed + 1)
    return decode(model, prior(model, n, seed) if z is None else z, generator=kw.pop("generator", g), **kw)


def to_performances(tokenizer: Tokenizer, seqs, tempo_bpm: float = 140.0, style: str = "",
                    source: str = "generated") -> list[Performance]:
    """Token id arrays -> Performances labelled ``{source}_{i}``."""
    perfs = [tokenizer.decode(s, tempo_bpm=tempo_bpm) for s in seqs]
    for i, p in enumerate(perfs):
        p.style, p.source = style, f"{source}_{i}"
    return perfs


def reconstruct(model, tokenizer: Tokenizer, perfs: list[Performance], batch_size: int = 64,
                **kw) -> list[Performance]:
    """Greedy decodes of mu(x) for each performance, keeping its tempo, style and source."""

    mu = encode_split(model, [tokenizer.encode(p) for p in perfs], batch_size)[0]
    seqs = decode(model, mu, greedy=True, tokenizer=tokenizer, batch_size=batch_size, **kw)
    out = []
    for p, s in zip(perfs, seqs):
        r = tokenizer.decode(s, tempo_bpm=p.tempo_bpm)
        r.style, r.source = p.style, p.source
        out.append(r)
    return out


def slerp(a, b, t):
    """Spherical interpolation between vectors a and b (..., D) at t in [0, 1] (scalar or (n,)).
    Falls back to linear interpolation when a and b are (anti)parallel. Returns numpy arrays."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    t = np.asarray(t, np.float64)[..., None]
    na, nb = np.linalg.norm(a, axis=-1, keepdims=True), np.linalg.norm(b, axis=-1, keepdims=True)
    cos = np.clip(np.sum(a * b, -1, keepdims=True) / np.maximum(na * nb, 1e-12), -1.0, 1.0)
    omega = np.arccos(cos)
    so = np.sin(omega)
    safe = so > 1e-6
    wa = np.where(safe, np.sin((1 - t) * omega) / np.where(safe, so, 1), 1 - t)
    wb = np.where(safe, np.sin(t * omega) / np.where(safe, so, 1), t)
    out = wa * a + wb * b
    # exact endpoints regardless of rounding
    return np.where(t == 0, a, np.where(t == 1, b, out))


def interpolate(a, b, n: int) -> np.ndarray:
    """(n, D) slerp path from a to b inclusive (row 0 == a, row n-1 == b)."""
    return slerp(a, b, np.linspace(0.0, 1.0, n)).astype(np.float32)


def write_outputs(perfs: list[Performance], out_dir, sample_rate: int = 44100, wav: bool = True,
                  cc_map: dict[int, str] | None = None) -> list[Path]:
    """Write ``<source>.mid`` (+ its controller sheet ``.json``, + ``.wav`` rendered by vaelib.synth with
    ``cc_map``, CC number -> synth parameter) per performance; returns MIDI paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for p in perfs:
        stem = clean_name(p.source)
        paths.append(write_midi(p, out / f"{stem}.mid", cc_map=cc_map))
        if wav:

            write_wav(out / f"{stem}.wav", render(p, sample_rate=sample_rate, cc_map=cc_map), sample_rate)
    return paths


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description="Sample basslines from a trained run's prior.")
    ap.add_argument("--run-dir", required=True)
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--out", required=True)
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--top-k", type=int, default=0)
    ap.add_argument("--top-p", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-grammar", action="store_true")
    ap.add_argument("--monophonic", action="store_true")
    ap.add_argument("--tempo-bpm", type=float, default=140.0)
    ap.add_argument("--sample-rate", type=int, default=44100)
    ap.add_argument("--cc-map", default=None, help="JSON CC map (CC number -> built-in synth parameter) for the .wav")
    priors = ap.add_mutually_exclusive_group()  # two ways to draw z instead of N(0, I): one at a time
    priors.add_argument("--fitted-prior", default=None, metavar="DATA_DIR",
                        help="draw z from the Gaussian fitted to the posteriors of DATA_DIR's training split "
                             "instead of N(0, I): its samples keep the data's bar-to-bar groove better")
    priors.add_argument("--learned-prior", nargs="?", const="", default=None, metavar="DATA_DIR",
                        help="draw z from a slot prior (latent_prior.SlotPrior: autoregressive over z's beat "
                             "slots), whose samples groove more than the fitted Gaussian's. Alone: the one the "
                             "evaluation fitted to this run's checkpoint (RUN/slot_prior.pt). With DATA_DIR: fit "
                             "one to the posteriors of DATA_DIR's training split, early-stopped on its validation "
                             "split (about a minute on one CPU core for `small`)")
    ap.add_argument("--learned-prior-steps", type=int, default=None,
                    help="optimizer steps fitting --learned-prior DATA_DIR (default: the run's "
                         "TrainConfig.prior_steps)")
    ap.add_argument("--prior-temperature", type=float, default=None,
                    help="temperature of the --learned-prior draws (default: the prior's own, the run's "
                         "TrainConfig.prior_temperature); below 1 the bars repeat more, for less variety")
    a = ap.parse_args(argv)
    if a.learned_prior_steps is not None and not a.learned_prior:
        ap.error("--learned-prior-steps sets the fit of --learned-prior DATA_DIR")
    if a.prior_temperature is not None and a.learned_prior is None:
        ap.error("--prior-temperature sets the draws of --learned-prior")
    if a.prior_temperature is not None and a.prior_temperature <= 0:
        ap.error("--prior-temperature must be > 0")

    model, config = load_model(a.run_dir)
    tk = Tokenizer(config.data.tokenizer)
    z = None
    if a.learned_prior == "":
        slot_prior = load_slot_prior(a.run_dir, model.checkpoint_path)
        if slot_prior is None:
            ap.error(f"--learned-prior: {a.run_dir} has no slot prior fitted to its checkpoint "
                     f"{Path(model.checkpoint_path).name} (the evaluation writes {PRIOR_FILE}); "
                     "pass the data folder to fit one: --learned-prior DATA_DIR")
        z = slot_prior.sample(a.n, a.seed, a.prior_temperature)
    elif a.learned_prior:
        steps = config.train.prior_steps if a.learned_prior_steps is None else a.learned_prior_steps
        z = fit_to_model(model, load_split(a.learned_prior, "train"), load_split(a.learned_prior, "val"),
                         steps=steps, seed=a.seed, temperature=config.train.prior_temperature,
                         sigma_scale=config.train.prior_sigma_scale,
                         ).sample(a.n, a.seed, a.prior_temperature)
    elif a.fitted_prior:
        z = fitted_prior(*encode_split(model, load_split(a.fitted_prior, "train")), a.n, a.seed)
    seqs = sample(model, a.n, seed=a.seed, z=z, temperature=a.temperature, top_k=a.top_k, top_p=a.top_p,
                  grammar=not a.no_grammar, monophonic=a.monophonic, tokenizer=tk)
    name = clean_name(f"{Path(a.run_dir).resolve().name}_seed{a.seed}")
    perfs = to_performances(tk, seqs, tempo_bpm=a.tempo_bpm, source=name)

    paths = write_outputs(perfs, a.out, sample_rate=a.sample_rate,
                          cc_map=load_cc_map(a.cc_map) if a.cc_map else None)
    for p, path in zip(perfs, paths):
        print(f"{path}  notes={p.n_notes} cc_changes={int(p.cc_changes().sum())}")


if __name__ == "__main__":
    main()
