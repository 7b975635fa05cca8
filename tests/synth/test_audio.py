"""WAV export and the notebook audio helper."""
from __future__ import annotations

import numpy as np
import soundfile as sf

from vaelib.synth.audio import audio_player, show_audio, write_wav
from vaelib.data.performance import Performance


def test_write_wav_round_trips_atomically(tmp_path):
    t = np.arange(22050) / 22050
    audio = (0.5 * np.sin(2 * np.pi * 110 * t)).astype(np.float32)
    path = write_wav(tmp_path / "sub" / "a.wav", audio, 22050)
    back, sr = sf.read(path, dtype="float32")
    assert sr == 22050 and back.shape == audio.shape
    np.testing.assert_allclose(back, audio, atol=1 / 32767)
    assert sorted(p.name for p in path.parent.iterdir()) == ["a.wav"]  # no temp file left behind


def test_write_wav_clips_and_cleans_bad_samples(tmp_path):
    back, _ = sf.read(write_wav(tmp_path / "b.wav", np.array([2.0, -3.0, np.nan, 0.25]), 8000))
    np.testing.assert_allclose(back, [1.0, -1.0, 0.0, 0.25], atol=1e-4)


def test_audio_player_embeds_ogg_that_decodes():
    import base64
    import io
    import re

    html = audio_player(0.1 * np.sin(np.arange(8000) / 5.0), 8000)._repr_html_()
    data = re.search(r'src="data:audio/ogg;base64,([^"]+)"', html).group(1)
    back, rate = sf.read(io.BytesIO(base64.b64decode(data)))
    assert rate == 8000 and len(back) == 8000 and "<audio controls" in html


def test_show_audio_renders_a_performance(capsys):
    p = Performance.from_events([(0, 8, 36, 100)], [], n_steps=16)
    assert show_audio(p, sample_rate=8000) is None
    assert "HTML" in capsys.readouterr().out  # outside a notebook IPython prints what it would display
