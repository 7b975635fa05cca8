"""The event grammar as vectorised boolean masks over the vocabulary, one row per sequence.

``Grammar`` tracks, per batch row, what the tokenizer's canonical stream allows next and
hands back a (B, V) bool mask; ``update`` advances it with the chosen tokens. The rules are
those of ``Tokenizer.encode`` (see vaelib/tokenizer.py), so a sequence that ends on its own
re-encodes to itself (``encode(decode(ids)) == ids``):

* VELOCITY only right before NOTE_ON, and NOTE_ON only right after VELOCITY;
* NOTE_OFF only for a sounding pitch, NOTE_ON only for a silent one (``monophonic``: a
  VELOCITY only while nothing sounds);
* within one grid step: NOTE_OFFs, then CCs, then VELOCITY+NOTE_ON pairs, each ascending
  (pitch, lane, pitch), so a lane changes at most once per step and no note has zero length;
* a CC only when it changes its lane's value (``no_repeat_cc``), as the tokenizer emits them;
* a total time budget of ``n_steps``: TIME_SHIFT k only if k <= steps left; no CC or note
  onset at the window's end; a short shift (< max_shift) is followed by an event, never by
  another shift or EOS, and a shift may reach the window's end only to close sounding notes
  (there, lowest pitch first);
* EOS only when nothing sounds and at least one note and one CC came (curation rejects empty
  windows, so the data never ends earlier), and forced when one position is left before ``max_len``
  (the decoder closes notes still open there, so output stays valid).

The masks never come back all-False for a live row (see ``allowed``).
"""
from __future__ import annotations

import torch

from vaelib.data.tokenizer import BOS, EOS, PAD, Tokenizer

# token kinds, as Tokenizer.token_types
SPECIAL, VEL, ON, OFF, SHIFT, CC = range(6)


class Grammar:
    """Decoding state of B sequences that have emitted BOS.

    Args:
        tokenizer: gives the id layout, ``n_steps`` and ``max_shift``.
        batch_size: B.
        max_len: total length budget including BOS and EOS.
        monophonic: at most one sounding note.
        no_repeat_cc: forbid a CC that sets its lane to the value it already has.
        device: where the masks live (the logits' device).
    """

    def __init__(self, tokenizer: Tokenizer, batch_size: int, *, max_len: int, monophonic: bool = False,
                 no_repeat_cc: bool = True, device: torch.device | str = "cpu"):
        tk, c = tokenizer, tokenizer.config
        if max_len < 2:
            raise ValueError("max_len must leave room for BOS and EOS")
        self.tk, self.max_len, self.monophonic, self.no_repeat_cc = tk, max_len, monophonic, no_repeat_cc
        self.n_steps, self.max_shift, self.n_cc = c.n_steps, c.max_shift, tk.n_cc
        B, dev = batch_size, torch.device(device)
        ids = torch.arange(tk.vocab_size, device=dev)
        self.kind = torch.as_tensor(tk._type_of, device=dev).long()  # (V,)
        self.amount = torch.where(self.kind == SHIFT, ids - tk.shift0 + 1, 0)  # (V,) steps
        self.pitch = torch.where(self.kind == ON, ids - tk.on0, torch.where(self.kind == OFF, ids - tk.off0, 0))
        cc_rel = (ids - tk.cc0).clamp(min=0)
        self.lane = torch.where(self.kind == CC, cc_rel // 128, 0)
        self.value = torch.where(self.kind == CC, cc_rel % 128, 0)
        # order key of an event within its grid step: OFF p -> p, CC lane l -> 256 + l, ON p -> 512 + p
        self.key = torch.where(self.kind == OFF, self.pitch, torch.where(
            self.kind == CC, 256 + self.lane, torch.where(self.kind == ON, 512 + self.pitch, -1)))
        # the same quantities per block of the layout, for ``allowed``
        if not (tk.vel0 > EOS and tk.vel0 < tk.on0 < tk.off0 < tk.shift0 < tk.cc0 < tk.vocab_size):
            raise ValueError("Grammar expects the layout specials | velocity | on | off | shift | cc")
        self._on_key = self.key[tk.on0:tk.off0][None]  # (1, 128)
        self._off_key = self.key[tk.off0:tk.shift0][None]  # (1, 128), = pitch
        self._shift_amount = self.amount[tk.shift0:tk.cc0][None]  # (1, max_shift)
        self._cc_key = self.key[tk.cc0:][None]  # (1, n_cc * 128)
        self._cc_value = self.value[tk.cc0:][None]
        self._pad_only = (ids == PAD)[None]  # (1, V) what a finished row may emit
        # per-row state
        self.sounding = torch.zeros(B, 128, dtype=torch.bool, device=dev)
        self.cc_value = torch.full((B, self.n_cc), -1, dtype=torch.long, device=dev)
        self.elapsed = torch.zeros(B, dtype=torch.long, device=dev)  # grid steps consumed
        self.last_key = torch.full((B,), -1, dtype=torch.long, device=dev)  # last event key in this step
        self.after_vel = torch.zeros(B, dtype=torch.bool, device=dev)
        self.after_short_shift = torch.zeros(B, dtype=torch.bool, device=dev)
        self.length = torch.ones(B, dtype=torch.long, device=dev)  # BOS
        self.done = torch.zeros(B, dtype=torch.bool, device=dev)
        self.has_note = torch.zeros(B, dtype=torch.bool, device=dev)
        self.has_cc = torch.zeros(B, dtype=torch.bool, device=dev)

    ROWS = ("sounding", "cc_value", "elapsed", "last_key", "after_vel", "after_short_shift", "length", "done",
            "has_note", "has_cc")  # the per-row state, what ``keep_rows`` cuts

    def keep_rows(self, keep: torch.Tensor) -> None:
        """Keep only the rows ``keep`` (bool (B,) or indices) of the per-row state."""
        for name in self.ROWS:
            setattr(self, name, getattr(self, name)[keep])

    def allowed(self) -> torch.Tensor:
        """(B, V) bool: the tokens each row may emit next (finished rows: PAD only).

        Built block by block over the vocabulary's layout (specials, velocities, note-ons, note-offs, shifts, CCs:
        contiguous id ranges), so each rule is evaluated on its own ids only."""
        B, tk = self.sounding.shape[0], self.tk
        rem = self.max_len - self.length  # (B,) positions left, EOS included
        live = (self.elapsed < self.n_steps)[:, None]  # onsets and CCs still inside the window
        room = (rem >= 2)[:, None]  # a non-EOS token still leaves room for EOS
        any_sounding = self.sounding.any(1, keepdim=True)  # (B, 1)
        last_key = self.last_key[:, None]
        on_ok = ~self.sounding & (self._on_key > last_key)  # (B, 128) silent pitch, in order
        vel_ok = live & (rem >= 3)[:, None] & on_ok.any(1, keepdim=True)  # (B, 1)
        if self.monophonic:
            vel_ok = vel_ok & ~any_sounding
        off_ok = self.sounding & (self._off_key > last_key)  # (B, 128)
        # at the window's end every open note must close in ascending order: only the lowest may go next
        lowest = self.sounding.int().argmax(1, keepdim=True)  # (B, 1)
        off_ok = torch.where(live, off_ok, off_ok & (self._off_key == lowest))
        left = (self.n_steps - self.elapsed)[:, None]
        shift_ok = ((self._shift_amount <= left) & ((self._shift_amount < left) | any_sounding)
                    & ~self.after_short_shift[:, None])  # (B, max_shift)
        cc_ok = live & (self._cc_key > last_key)  # (B, n_cc * 128)
        if self.no_repeat_cc:
            cc_ok = cc_ok & (self._cc_value != self.cc_value.repeat_interleave(128, dim=1))
        # an empty window may end only where nothing else fits (the last step, or no room for a note)
        content = (self.has_note & self.has_cc | (rem <= 2) | (self.elapsed >= self.n_steps - 1))[:, None]
        eos_ok = (~any_sounding & ~self.after_short_shift[:, None] & content) | ~room  # (B, 1)
        after_vel = self.after_vel[:, None]  # right after VELOCITY the only choice is its NOTE_ON
        free = room & ~after_vel
        special = torch.zeros(B, tk.vel0, dtype=torch.bool, device=room.device)
        special[:, EOS] = (eos_ok & ~after_vel)[:, 0]
        mask = torch.cat([special, (vel_ok & free).expand(B, tk.on0 - tk.vel0), on_ok & after_vel, off_ok & free,
                          shift_ok & free, cc_ok & free], dim=1)
        mask[:, EOS] |= ~mask.any(1)  # never strand a row (the rules above should already prevent it)
        return torch.where(self.done[:, None], self._pad_only, mask)

    def update(self, tokens: torch.Tensor) -> None:
        """Advance every unfinished row by its token ``tokens`` (B,) long."""
        live = ~self.done
        k, p = self.kind[tokens], self.pitch[tokens]
        rows = torch.arange(len(tokens), device=tokens.device)
        is_shift = live & (k == SHIFT)
        self.elapsed += torch.where(is_shift, self.amount[tokens], 0)
        self.after_short_shift = is_shift & (self.amount[tokens] < self.max_shift)
        on, off, cc = live & (k == ON), live & (k == OFF), live & (k == CC)
        self.sounding[rows[on], p[on]] = True
        self.sounding[rows[off], p[off]] = False
        self.cc_value[rows[cc], self.lane[tokens][cc]] = self.value[tokens][cc]
        has_key = on | off | cc
        self.last_key = torch.where(is_shift, -1, torch.where(has_key, self.key[tokens], self.last_key))
        self.after_vel = live & (k == VEL)
        self.has_note |= on
        self.has_cc |= cc
        self.length += live.long()
        self.done |= live & (tokens == EOS)


def check_sequence(tokenizer: Tokenizer, ids, *, max_len: int, monophonic: bool = False) -> None:
    """Replay ``ids`` (BOS ... EOS) token by token and raise ``ValueError`` at the first
    grammar violation. A plain-Python statement of the rules, independent of the masks."""
    tk, c = tokenizer, tokenizer.config
    ids = [int(i) for i in ids]
    if ids[0] != BOS or ids[-1] != EOS or EOS in ids[1:-1] or len(ids) > max_len:
        raise ValueError("not BOS ... EOS within max_len")
    kinds = tk.token_types(ids)
    sounding, cc, t, last_key, prev, seen_note = set(), {}, 0, -1, None, False  # prev: (kind, amount)
    for i, (tok, kind) in enumerate(zip(ids[1:], kinds[1:]), start=1):
        forced_end = tok == EOS and i == max_len - 1
        if prev and prev[0] == VEL and kind != ON:
            raise ValueError(f"{i}: VELOCITY not followed by NOTE_ON")
        if prev and prev[0] == SHIFT and prev[1] < c.max_shift and kind in (SHIFT, SPECIAL) and not forced_end:
            raise ValueError(f"{i}: short TIME_SHIFT not followed by an event")
        if kind == SPECIAL:
            empty_ok = (seen_note and cc) or i >= max_len - 2 or t >= c.n_steps - 1
            if tok != EOS or ((sounding or not empty_ok) and not forced_end):
                raise ValueError(f"{i}: {tk.describe(tok)} with notes {sorted(sounding)} sounding")
        elif kind == VEL:
            if t >= c.n_steps or (monophonic and sounding):
                raise ValueError(f"{i}: VELOCITY at step {t} with {sorted(sounding)} sounding")
        elif kind == ON:
            p = tok - tk.on0
            if prev is None or prev[0] != VEL or p in sounding or 512 + p <= last_key:
                raise ValueError(f"{i}: NOTE_ON {p} out of grammar")
            sounding.add(p)
            last_key, seen_note = 512 + p, True
        elif kind == OFF:
            p = tok - tk.off0
            if p not in sounding or p <= last_key:
                raise ValueError(f"{i}: NOTE_OFF {p} of a silent pitch or out of order")
            sounding.discard(p)
            last_key = p
        elif kind == SHIFT:
            amount = tok - tk.shift0 + 1
            if t + amount > c.n_steps or (t + amount == c.n_steps and not sounding):
                raise ValueError(f"{i}: TIME_SHIFT {amount} at step {t} overruns the window")
            t += amount
            last_key = -1
        else:
            lane, value = divmod(tok - tk.cc0, 128)
            if t >= c.n_steps or 256 + lane <= last_key or cc.get(lane) == value:
                raise ValueError(f"{i}: CC lane {lane}={value} at step {t} out of grammar")
            cc[lane] = value
            last_key = 256 + lane
        prev = (kind, tok - tk.shift0 + 1 if kind == SHIFT else 0)
