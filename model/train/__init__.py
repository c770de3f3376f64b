"""BootPIG training: `TrainConfig` settings, the triplet dataset, the loop and its checkpoints."""

from model.train.config import AugmentationConfig, TrainConfig, load_train_config

__all__ = ["AugmentationConfig", "TrainConfig", "load_train_config"]
