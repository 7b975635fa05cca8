"""Audio export and notebook listening: ``write_wav``, ``write_ogg`` / ``ogg_bytes`` (compressed clips a report
can carry), and ``show_audio``."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from vaelib.atomic import atomic_write
from vaelib.synth import render


def write_wav(path, audio: np.ndarray, sample_rate: int) -> Path:
    """Write mono float audio (T,) as a 16-bit PCM WAV, atomically (``vaelib.atomic``). Returns the path."""
    import soundfile as sf

    audio = np.clip(np.nan_to_num(np.asarray(audio, np.float32).reshape(-1)), -1.0, 1.0)
    return atomic_write(path, lambda f: sf.write(f, audio, int(sample_rate), subtype="PCM_16", format="WAV"))


# Ogg Vorbis at libsndfile's compression level 0.5: ~27 kB for a 4-bar clip at 22.05 kHz (a 16-bit WAV: ~290 kB).
OGG_COMPRESSION = 0.5


def ogg_bytes(audio: np.ndarray, sample_rate: int, compression: float = OGG_COMPRESSION) -> bytes:
    """Mono float audio (T,) as Ogg Vorbis bytes (``compression`` 0 = best quality .. 1 = smallest)."""
    import io

    import soundfile as sf

    buf = io.BytesIO()
    audio = np.clip(np.nan_to_num(np.asarray(audio, np.float32).reshape(-1)), -1.0, 1.0)
    sf.write(buf, audio, int(sample_rate), format="OGG", subtype="VORBIS", compression_level=compression)
    return buf.getvalue()


def write_ogg(path, audio: np.ndarray, sample_rate: int, compression: float = OGG_COMPRESSION) -> Path:
    """Write mono float audio (T,) as an Ogg Vorbis file, atomically. Returns the path."""
    data = ogg_bytes(audio, sample_rate, compression)
    return atomic_write(path, lambda f: f.write(data))


def audio_player(audio: np.ndarray, sample_rate: int):
    """An HTML ``<audio>`` player with the clip embedded as Ogg Vorbis (base64), so it survives nbconvert to HTML
    at a tenth of a WAV's size. Not normalised: levels stay comparable between players (renders are within
    [-1, 1])."""
    import base64

    from IPython.display import HTML

    data = base64.b64encode(ogg_bytes(audio, sample_rate)).decode("ascii")
    return HTML(f'<audio controls preload="none" src="data:audio/ogg;base64,{data}"></audio>')


def file_player(path):
    """A player for an audio file (any format soundfile reads), embedded as Ogg Vorbis (see ``audio_player``)."""
    import soundfile as sf

    audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    return audio_player(audio.mean(1), rate)


def show_audio(perf_or_audio, sample_rate: int = 22050, title: str = "", max_hz: float = 8000.0) -> None:
    """Display a log-magnitude spectrogram and an embedded audio player (see ``audio_player``).
    Accepts a ``Performance`` (rendered with the built-in voice) or mono audio (T,). Returns None, so a
    notebook cell ending in ``show_audio(...)`` shows each output once."""
    import matplotlib.pyplot as plt
    from IPython.display import display

    if isinstance(perf_or_audio, np.ndarray):
        audio = perf_or_audio.reshape(-1)
    else:

        audio = render(perf_or_audio, sample_rate=sample_rate)
    fig, ax = plt.subplots(figsize=(8, 2.5))
    if np.any(audio):
        with np.errstate(divide="ignore"):  # silent frames are log10(0) = -inf dB, drawn at vmin
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
