"""vaelib: a beta-VAE for synthesizer bassline performances (notes + dense MIDI CC automation)."""
from vaelib.config import PRESETS, DataConfig, ExperimentConfig, ModelConfig, TokenizerConfig, TrainConfig, get_preset
from vaelib.data.performance import Performance

__all__ = ["PRESETS", "DataConfig", "ExperimentConfig", "ModelConfig", "TokenizerConfig", "TrainConfig",
           "get_preset", "Performance"]
__version__ = "0.1.0"
