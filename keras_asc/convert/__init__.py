"""The checkpoint-conversion command (``convert_passt``).

The conversion itself (PyTorch state dict → keras-asc weights, NumPy only; ``.pt`` read
without torch) lives with the models it fills: :mod:`keras_asc.models.passt_checkpoint` and
:mod:`keras_asc.models.torch_checkpoint`, used by ``SceneClassifier.from_preset`` through
:mod:`keras_asc.models.weights_cache`.
"""
