"""Audio export and notebook listening: ``write_wav`` and ``show_audio``."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from vaelib.atomic import atomic_write


def write_wav(path, audio: np.ndarray, sample_rate: int) -> Path:
    """Write mono float audio (T,) as a 16-bit PCM WAV, atomically (``vaelib.atomic``). Returns the path."""
    import soundfile as sf

    audio = np.clip(np.nan_to_num(np.asarray(audio, np.float32).reshape(-1)), -1.0, 1.0)
    return atomic_write(path, lambda f: sf.write(f, audio, int(sample_rate), subtype="PCM_16", format="WAV"))


def audio_player(audio: np.ndarray, sample_rate: int):
    """An ``IPython.display.Audio`` player with the WAV data embedded (base64), so it survives nbconvert
    to HTML. Not normalised: levels stay comparable between players (renders are within [-1, 1])."""
    from IPython.display import Audio

    return Audio(np.clip(np.nan_to_num(np.asarray(audio, np.float32).reshape(-1)), -1.0, 1.0), rate=sample_rate,
                 normalize=False, embed=True)


def show_audio(perf_or_audio, sample_rate: int = 22050, title: str = "", max_hz: float = 8000.0) -> None:
    """Display a log-magnitude spectrogram and an embedded audio player (see ``audio_player``).
    Accepts a ``Performance`` (rendered with the built-in voice) or mono audio (T,). Returns None, so a
    notebook cell ending in ``show_audio(...)`` shows each output once."""
    import matplotlib.pyplot as plt
    from IPython.display import display

    if isinstance(perf_or_audio, np.ndarray):
        audio = perf_or_audio.reshape(-1)
    else:
        from vaelib.synth import render

        audio = render(perf_or_audio, sample_rate=sample_rate)
    fig, ax = plt.subplots(figsize=(8, 2.5))
    if np.any(audio):
        ax.specgram(audio, NFFT=1024, Fs=sample_rate, noverlap=768, cmap="magma", vmin=-120)
    ax.set_ylim(0, min(max_hz, sample_rate / 2))
    ax.set_xlabel("time (s)")
    ax.set_ylabel("Hz")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    display(fig)
    plt.close(fig)  # displayed once above; closing stops the inline backend showing it a second time
    display(audio_player(audio, sample_rate))
