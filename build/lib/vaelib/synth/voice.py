"""``get_signal``: the built-in virtual-analog bass voice (the DDSP "signal" half), one numba loop per sample.

Signal path (per sample, all state float64, no fast-math, no randomness, so renders are bit-identical):

    osc  = shape-blend(polyBLEP saw, polyBLEP square)                            osc_mix
         + the same blend on a second oscillator detuned up                       detune_cents
         + a polyBLEP square sub-oscillator an octave down, level follows          osc_mix
    x    = tanh(drive * osc)                                                       drive (tanh saturation)
    y    = 4-pole (24 dB/oct) zero-delay-feedback ladder low-pass, a tanh-shaped
           saturator on the feedback sum (the Moog input stage), passband loss
           partly compensated                                                      resonance
           cutoff = cutoff_hz * 2 ** (env_octaves * filter_env * (0.5 + 0.5 vel) + lfo_octaves * sin(LFO)),
           evaluated every MOD_EVERY samples and ramped linearly in between
    out  = soft_clip(y * amp_env * (0.25 + 0.75 vel) * gain)                       gain

Envelopes retrigger on non-legato notes and start from their current level (no reset click); legato
notes glide their pitch (one-pole, ~95 % of the way in ``glide_sec``). Controls arrive at control rate
and are interpolated linearly per sample (``interpolation="linear"``); ``"step"`` holds each frame for
its block instead, which exists only to show (in tests) the zipper/click artefacts that interpolation removes.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from vaelib.synth.controls import CURVE_NAMES

# Envelope shapes (seconds; fixed, the CCs move depth and the filter, not the envelope times).
AMP_ATTACK_SEC = 0.002  # linear: short enough to keep plucks, long enough not to click
AMP_DECAY_SEC = 0.25  # exponential time constant towards the sustain level
AMP_SUSTAIN = 0.7
AMP_RELEASE_SEC = 0.015  # exponential time constant after note-off
FILT_ATTACK_SEC = 0.001
FILT_DECAY_SEC = 0.12  # the bass "pluck": filter env decays to 0 while the note holds
FILT_RELEASE_SEC = 0.08
VEL_SMOOTH_SEC = 0.002  # velocity changes on legato notes are ramped, not stepped
OUTPUT_SCALE = 1.0  # headroom before the soft clip: typical renders peak around -8..-3 dBFS
MOD_EVERY = 4  # samples between evaluations of the filter-cutoff modulation (ramped in between)
CLIP_KNEE = 0.8  # soft clip: linear below, tanh above, never reaches 1.0


@njit(cache=True, inline="always")
def _poly_blep(t, dt):
    """Band-limited step residual at phase ``t`` in [0, 1) for phase increment ``dt`` (< 0.5)."""
    if t < dt:
        x = t / dt
        return x + x - x * x - 1.0
    if t > 1.0 - dt:
        x = (t - 1.0) / dt
        return x * x + x + x + 1.0
    return 0.0


@njit(cache=True, inline="always")
def _saw(t, dt):
    return 2.0 * t - 1.0 - _poly_blep(t, dt)


@njit(cache=True, inline="always")
def _square(t, dt):
    t2 = t + 0.5
    if t2 >= 1.0:
        t2 -= 1.0
    naive = 1.0 if t < 0.5 else -1.0
    return naive + _poly_blep(t, dt) - _poly_blep(t2, dt)


@njit(cache=True, inline="always")
def _tanh(x):
    """tanh as 1 - 2 / (exp(2x) + 1): within 4e-16 of libm's tanh and ~3x faster in this loop (libm tanh
    was half of the voice's cost). Clamped where tanh is already +-1.0 in float64."""
    if x > 20.0:
        x = 20.0
    elif x < -20.0:
        x = -20.0
    return 1.0 - 2.0 / (math.exp(2.0 * x) + 1.0)


@njit(cache=True, inline="always")
def _sigmoid(x):
    """tanh-shaped saturator for the ladder's feedback path: Lambert's [7/6] continued fraction, within
    1e-4 of tanh, clamped at +-1 where it reaches 1; cheaper than an exp in the hottest line."""
    if x > 4.97:
        return 1.0
    if x < -4.97:
        return -1.0
    x2 = x * x
    return x * (135135.0 + x2 * (17325.0 + x2 * (378.0 + x2))) / (135135.0 + x2 * (62370.0 + x2 * (3150.0 + 28.0 * x2)))


@njit(cache=True, inline="always")
def _soft_clip(x):
    a = abs(x)
    if a <= CLIP_KNEE:
        return x
    y = CLIP_KNEE + (1.0 - CLIP_KNEE) * _tanh((a - CLIP_KNEE) / (1.0 - CLIP_KNEE))
    return y if x > 0 else -y


@njit(cache=True)
def _render_kernel(n_samples, sr, hop, interpolate, cutoff_hz, resonance, drive, env_octaves, lfo_octaves,
                   lfo_hz, osc_mix, detune_cents, glide_sec, gain, note_on, note_off, note_pitch,
                   note_velocity, note_legato):
    out = np.zeros(n_samples, np.float64)
    n_notes = note_on.shape[0]
    inv_sr = 1.0 / sr
    inv_hop = 1.0 / hop
    ln2 = math.log(2.0)
    max_hz = 0.45 * sr
    amp_attack = inv_sr / AMP_ATTACK_SEC
    amp_decay = math.exp(-inv_sr / AMP_DECAY_SEC)
    amp_release = math.exp(-inv_sr / AMP_RELEASE_SEC)
    filt_attack = inv_sr / FILT_ATTACK_SEC
    filt_decay = math.exp(-inv_sr / FILT_DECAY_SEC)
    filt_release = math.exp(-inv_sr / FILT_RELEASE_SEC)
    vel_coef = math.exp(-inv_sr / VEL_SMOOTH_SEC)

    # state
    ph1 = 0.0; ph2 = 0.0; ph_sub = 0.0; ph_lfo = 0.0  # noqa: E702  oscillator phases in cycles
    s1 = 0.0; s2 = 0.0; s3 = 0.0; s4 = 0.0  # noqa: E702  ladder integrator states
    amp = 0.0; filt = 0.0; amp_stage = 0; filt_stage = 0  # noqa: E702  stage 0 release, 1 attack, 2 decay
    pitch = 36.0; target = 36.0; vel = 0.0; vel_target = 0.0  # noqa: E702
    last_pitch = -1.0; last_det = -1.0; dt1 = 0.0; dt2 = 0.0  # noqa: E702  cached oscillator increments
    G = 0.0; dG = 0.0; inv_mod = 1.0 / MOD_EVERY  # noqa: E702  ladder coefficient and its per-sample ramp
    d_cut = 0.0; d_res = 0.0; d_drive = 0.0; d_env = 0.0; d_lfo = 0.0  # noqa: E702  per-sample control slopes
    d_rate = 0.0; d_mix = 0.0; d_det = 0.0; d_glide = 0.0; d_gain = 0.0  # noqa: E702
    c_cut = 0.0; c_res = 0.0; c_drive = 0.0; c_env = 0.0; c_lfo = 0.0  # noqa: E702  current control values
    c_rate = 0.0; c_mix = 0.0; c_det = 0.0; c_glide = 0.0; c_gain = 0.0  # noqa: E702
    k = 0; pos = 0; mod_pos = 0  # noqa: E702  control frame, position in it, position in the modulation block
    cur = -1  # index of the sounding note
    nxt = 0  # next note to start
    gate = False

    for n in range(n_samples):
        # ---- notes (mono, last onset wins)
        while nxt < n_notes and note_on[nxt] <= n:
            legato = note_legato[nxt] and gate
            cur = nxt
            nxt += 1
            target = note_pitch[cur]
            vel_target = note_velocity[cur]
            gate = True
            if not legato:
                pitch = target
                amp_stage = 1
                filt_stage = 1
        if gate and n >= note_off[cur]:
            gate = False
            amp_stage = 0
            filt_stage = 0

        # ---- controls: linear ramps between control frames (slopes set once per frame, then one add per
        # sample), or held per block. Counters, not n // hop: a per-sample integer division is expensive.
        if pos == 0:
            c_cut = cutoff_hz[k]
            c_res = resonance[k]
            c_drive = drive[k]
            c_env = env_octaves[k]
            c_lfo = lfo_octaves[k]
            c_rate = lfo_hz[k]
            c_mix = osc_mix[k]
            c_det = detune_cents[k]
            c_glide = glide_sec[k]
            c_gain = gain[k]
            if interpolate:
                d_cut = (cutoff_hz[k + 1] - cutoff_hz[k]) * inv_hop
                d_res = (resonance[k + 1] - resonance[k]) * inv_hop
                d_drive = (drive[k + 1] - drive[k]) * inv_hop
                d_env = (env_octaves[k + 1] - env_octaves[k]) * inv_hop
                d_lfo = (lfo_octaves[k + 1] - lfo_octaves[k]) * inv_hop
                d_rate = (lfo_hz[k + 1] - lfo_hz[k]) * inv_hop
                d_mix = (osc_mix[k + 1] - osc_mix[k]) * inv_hop
                d_det = (detune_cents[k + 1] - detune_cents[k]) * inv_hop
                d_glide = (glide_sec[k + 1] - glide_sec[k]) * inv_hop
                d_gain = (gain[k + 1] - gain[k]) * inv_hop
        else:
            c_cut += d_cut
            c_res += d_res
            c_drive += d_drive
            c_env += d_env
            c_lfo += d_lfo
            c_rate += d_rate
            c_mix += d_mix
            c_det += d_det
            c_glide += d_glide
            c_gain += d_gain
        pos += 1
        if pos == hop:
            pos = 0
            k += 1

        # ---- envelopes
        if amp_stage == 1:
            amp += amp_attack
            if amp >= 1.0:
                amp = 1.0
                amp_stage = 2
        elif amp_stage == 2:
            amp = AMP_SUSTAIN + (amp - AMP_SUSTAIN) * amp_decay
        else:
            amp *= amp_release
        if filt_stage == 1:
            filt += filt_attack
            if filt >= 1.0:
                filt = 1.0
                filt_stage = 2
        elif filt_stage == 2:
            filt *= filt_decay
        else:
            filt *= filt_release
        vel = vel_target + (vel - vel_target) * vel_coef

        # ---- glide (only legato notes move ``target`` without resetting ``pitch``)
        if pitch != target:
            if c_glide < 1e-3:
                pitch = target
            else:
                g = math.exp(-3.0 * inv_sr / c_glide)  # ~95 % of the way after c_glide seconds
                pitch = target + (pitch - target) * g
                if abs(pitch - target) < 1e-6:
                    pitch = target

        # ---- oscillators (exp only when pitch or detune moved: most samples hold both)
        if pitch != last_pitch or c_det != last_det:
            f0 = 440.0 * math.exp((pitch - 69.0) * ln2 / 12.0)
            dt1 = min(f0 * inv_sr, 0.45)
            dt2 = min(dt1 * math.exp(c_det * ln2 / 1200.0), 0.45)
            last_pitch = pitch
            last_det = c_det
        dts = 0.5 * dt1
        if c_mix <= 0.0:
            osc1 = _saw(ph1, dt1)
        elif c_mix >= 1.0:
            osc1 = _square(ph1, dt1)
        else:
            osc1 = (1.0 - c_mix) * _saw(ph1, dt1) + c_mix * _square(ph1, dt1)
        if dt2 == dt1 and ph2 == ph1:  # no detune and in phase (the default): the copy is exact
            osc2 = osc1
        elif c_mix <= 0.0:
            osc2 = _saw(ph2, dt2)
        elif c_mix >= 1.0:
            osc2 = _square(ph2, dt2)
        else:
            osc2 = (1.0 - c_mix) * _saw(ph2, dt2) + c_mix * _square(ph2, dt2)
        sub_level = 0.5 * c_mix
        osc = 0.5 * (osc1 + osc2)
        if sub_level > 0.0:
            osc = (osc + sub_level * _square(ph_sub, dts)) / (1.0 + sub_level)
        ph1 += dt1
        if ph1 >= 1.0:
            ph1 -= 1.0
        ph2 += dt2
        if ph2 >= 1.0:
            ph2 -= 1.0
        ph_sub += dts
        if ph_sub >= 1.0:
            ph_sub -= 1.0

        # ---- LFO and cutoff modulation. The ladder coefficient G (exp, tan, sin: the costly part) is
        # evaluated every MOD_EVERY samples and ramped linearly in between: no steps, ~2x faster.
        if mod_pos == 0:
            lfo = math.sin(2.0 * math.pi * ph_lfo) if c_lfo != 0.0 else 0.0
            octaves = c_env * filt * (0.5 + 0.5 * vel) + c_lfo * lfo
            fc = c_cut * math.exp(octaves * ln2)
            if fc < 20.0:
                fc = 20.0
            elif fc > max_hz:
                fc = max_hz
            g = math.tan(math.pi * fc * inv_sr)
            G_target = g / (1.0 + g)
            if n == 0:
                G = G_target
            dG = (G_target - G) * inv_mod
        G += dG
        mod_pos += 1
        if mod_pos == MOD_EVERY:
            mod_pos = 0
        ph_lfo += c_rate * inv_sr
        if ph_lfo >= 1.0:
            ph_lfo -= 1.0

        # ---- drive + 24 dB ZDF ladder (solve the linear feedback, then saturate the input stage)
        x = _tanh(c_drive * osc)
        H = 1.0 - G
        kf = 4.0 * c_res
        G2 = G * G
        S = G2 * G * H * s1 + G2 * H * s2 + G * H * s3 + H * s4
        y4 = (G2 * G2 * x + S) / (1.0 + kf * G2 * G2)
        u = _sigmoid(x - kf * y4)
        y1 = G * u + H * s1
        s1 = 2.0 * y1 - s1
        y2 = G * y1 + H * s2
        s2 = 2.0 * y2 - s2
        y3 = G * y2 + H * s3
        s3 = 2.0 * y3 - s3
        y = G * y3 + H * s4
        s4 = 2.0 * y - s4
        y *= 1.0 + 0.5 * kf  # partial passband-gain compensation for the resonance

        out[n] = _soft_clip(OUTPUT_SCALE * y * amp * (0.25 + 0.75 * vel) * c_gain)
    return out


def get_signal(sample_rate: int, n_samples: int, hop: int, note_on, note_off, note_pitch, note_velocity,
               note_legato, interpolation: str = "linear", **curves) -> np.ndarray:
    """Render ``get_controls(...)`` output to audio: float64 (n_samples,), in (-1, 1).

    ``interpolation``: "linear" (per-sample ramps between control frames) or "step" (hold each frame for
    ``hop`` samples; the block-stepped path that tests use to show zipper noise).
    """
    if interpolation not in ("linear", "step"):
        raise ValueError(f"interpolation must be 'linear' or 'step', got {interpolation!r}")
    missing = set(CURVE_NAMES) - set(curves)
    if missing:
        raise TypeError(f"get_signal: missing control curves {sorted(missing)}")
    n_frames = n_samples // hop + 2
    c = [np.ascontiguousarray(curves[name], np.float64) for name in CURVE_NAMES]
    for name, arr in zip(CURVE_NAMES, c):
        if arr.shape != (n_frames,):
            raise ValueError(f"control {name!r} has shape {arr.shape}, expected ({n_frames},)")
    return _render_kernel(int(n_samples), float(sample_rate), int(hop), interpolation == "linear", *c,
                          np.ascontiguousarray(note_on, np.int64), np.ascontiguousarray(note_off, np.int64),
                          np.ascontiguousarray(note_pitch, np.float64),
                          np.ascontiguousarray(note_velocity, np.float64),
                          np.ascontiguousarray(note_legato, np.bool_))
