"""Loaders for the official PyTorch PaSST code, used only as a test oracle.

The installed ``torchaudio`` cannot be imported (its compiled extension does not load) and
``timm`` fails on import (``torchvision::nms``). The pieces the oracle needs are pure Python, so
this module loads them from their installed files with small stub packages in ``sys.modules``:

- ``load_kaldi()``: the real ``torchaudio/compliance/kaldi.py`` (``get_mel_banks`` etc.).
- ``load_augment_mel_stft()``: the real ``hear21passt.models.preprocess.AugmentMelSTFT``; its
  ``torchaudio.compliance.kaldi`` is the real file above and its ``torchaudio.transforms``
  ``FrequencyMasking`` / ``TimeMasking`` are the real classes from
  ``torchaudio/transforms/_transforms.py`` (backed by the real ``torchaudio.functional``), so both
  the eval and the training path run the official code.
- ``load_torchaudio_functional()``: the real ``torchaudio.functional.functional`` module.
- ``load_passt_module()``: the real ``hear21passt.models.passt`` (``PaSST``, ``get_model``) with
  ``timm.models._hub`` stubbed; building with ``pretrained=False`` downloads nothing.

Nothing here touches the network. The stubs are installed once per process and are marked with
``__keras_asc_stub__`` so a real, importable torchaudio/timm is never shadowed by accident.
"""

import importlib.machinery
import importlib.util
import os
import site
import sys
import types

_STUB_MARK = "__keras_asc_stub__"


def _site_dirs():
    dirs = []
    try:
        dirs.extend(site.getsitepackages())
    except AttributeError:  # virtualenvs with an old site module
        pass
    user = site.getusersitepackages()
    if isinstance(user, str):
        dirs.append(user)
    dirs.extend(p for p in sys.path if p.endswith("site-packages"))
    return dirs


def _package_dir(name):
    """Installed directory of top-level package ``name``, found without importing it."""
    if name in sys.modules and getattr(sys.modules[name], _STUB_MARK, False):
        return sys.modules[name].__path__[0]
    spec = importlib.machinery.PathFinder.find_spec(name)
    if spec is not None and spec.submodule_search_locations:
        return list(spec.submodule_search_locations)[0]
    for base in _site_dirs():
        candidate = os.path.join(base, name)
        if os.path.isdir(candidate):
            return candidate
    raise ModuleNotFoundError(f"package {name!r} is not installed (needed by the torch oracle)")


def _stub_package(name, path=None):
    """Puts an empty package ``name`` in sys.modules (keeping an existing stub)."""
    module = sys.modules.get(name)
    if module is not None and getattr(module, _STUB_MARK, False):
        return module
    module = types.ModuleType(name)
    setattr(module, _STUB_MARK, True)
    module.__path__ = [path] if path else []
    sys.modules[name] = module
    parent, _, child = name.rpartition(".")
    if parent:
        setattr(sys.modules[parent], child, module)
    return module


def _load_file(name, path):
    """Executes the source file ``path`` as module ``name`` (registered in sys.modules)."""
    if name in sys.modules and not getattr(sys.modules[name], _STUB_MARK, False):
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    parent, _, child = name.rpartition(".")
    if parent:
        setattr(sys.modules[parent], child, module)
    return module


def _install_torchaudio_stub():
    """Stub ``torchaudio`` whose pure-Python submodules are the real installed files."""
    existing = sys.modules.get("torchaudio")
    if existing is not None and not getattr(existing, _STUB_MARK, False):
        return existing  # a working torchaudio was imported by someone: use it
    root = _package_dir("torchaudio")
    _stub_package("torchaudio", root)
    extension = _stub_package("torchaudio._extension")
    extension._IS_TORCHAUDIO_EXT_AVAILABLE = False  # selects the pure-Python code paths
    return sys.modules["torchaudio"]


def load_kaldi():
    """Returns the real ``torchaudio.compliance.kaldi`` module (loaded from its file)."""
    torchaudio = _install_torchaudio_stub()
    if not getattr(torchaudio, _STUB_MARK, False):
        import torchaudio.compliance.kaldi as kaldi

        return kaldi
    root = torchaudio.__path__[0]
    _stub_package("torchaudio.compliance", os.path.join(root, "compliance"))
    return _load_file("torchaudio.compliance.kaldi", os.path.join(root, "compliance", "kaldi.py"))


def _load_torchaudio_transforms():
    """Real ``torchaudio.functional`` and ``torchaudio.transforms._transforms`` on the stub."""
    torchaudio = sys.modules["torchaudio"]
    root = torchaudio.__path__[0]
    functional_pkg = _stub_package("torchaudio.functional", os.path.join(root, "functional"))
    functional = _load_file(
        "torchaudio.functional.functional", os.path.join(root, "functional", "functional.py")
    )
    for key, value in vars(functional).items():
        if not key.startswith("__"):
            setattr(functional_pkg, key, value)
    transforms_pkg = _stub_package("torchaudio.transforms", os.path.join(root, "transforms"))
    transforms = _load_file(
        "torchaudio.transforms._transforms", os.path.join(root, "transforms", "_transforms.py")
    )
    transforms_pkg.FrequencyMasking = transforms.FrequencyMasking
    transforms_pkg.TimeMasking = transforms.TimeMasking
    return transforms_pkg


def load_augment_mel_stft():
    """Returns the real ``AugmentMelSTFT`` class of the installed hear21passt.

    Usage: ``mel = load_augment_mel_stft()(freqm=48, timem=20, fmax_aug_range=1000).eval()``.
    """
    torchaudio = _install_torchaudio_stub()
    if getattr(torchaudio, _STUB_MARK, False):
        load_kaldi()
        _load_torchaudio_transforms()
    from hear21passt.models.preprocess import AugmentMelSTFT

    return AugmentMelSTFT


def load_torchaudio_functional():
    """Returns the real ``torchaudio.functional.functional`` module (``mask_along_axis_iid``...).

    Only its pure-Python functions work (the compiled extension is absent).
    """
    load_augment_mel_stft()
    return sys.modules["torchaudio.functional.functional"]


def _install_timm_stub():
    """Stubs ``timm.models._hub`` (the installed timm fails on import; only
    ``download_cached_file`` is needed, and the oracle never downloads)."""
    if "timm.models._hub" in sys.modules:
        return
    _stub_package("timm", _package_dir("timm"))
    _stub_package("timm.models")
    hub = _stub_package("timm.models._hub")

    def download_cached_file(url, *args, **kwargs):
        raise RuntimeError(f"torch oracle: downloads are disabled (asked for {url})")

    hub.download_cached_file = download_cached_file


def load_passt_module():
    """Returns the real ``hear21passt.models.passt`` module (``PaSST``, ``get_model``).

    Build random-weight models only, e.g.
    ``load_passt_module().get_model(arch="passt_s_swa_p16_128_ap476", pretrained=False,
    n_classes=10, s_patchout_f=6)`` (default input_tdim=998: 99 time
    positions as in the AudioSet checkpoints). It prints a lot (upstream debug prints).
    """
    _install_timm_stub()
    import hear21passt.models.passt as passt

    return passt
