"""Models of keras-asc: the PaSST backbone, the scene classification task and their presets."""

from keras_asc.models.passt_backbone import PaSSTBackbone
from keras_asc.models.passt_presets import passt_presets
from keras_asc.models.scene_classifier import SceneClassifier

__all__ = ["PaSSTBackbone", "SceneClassifier", "passt_presets"]
