"""Optional dependencies: one clear error naming the ``pip install`` extra that provides them.

``wandb`` (``keras-asc[wandb]``), ``matplotlib`` (``keras-asc[plots]``), ``tensorboard``
(``keras-asc[tensorboard]``, only to *view* the event files) and ``torch`` (``keras-asc[oracle]``,
the tests' reference implementation) are not installed with the package; the code that needs
one imports it through :func:`require`.
"""

import importlib

from asc_core.errors import UserError

# module -> the extra of pyproject.toml that installs it
EXTRAS = {
    "wandb": "wandb",
    "matplotlib": "plots",
    "tensorboard": "tensorboard",
    "torch": "oracle",
}


class MissingExtraError(UserError):
    """An optional package is not installed; the message names the extra that installs it."""


def require(module, purpose):
    """Imports and returns ``module``, or raises :class:`MissingExtraError`.

    Args:
        module: str, a top-level module of :data:`EXTRAS` (``"wandb"``, ``"matplotlib"`` ...).
        purpose: str, what needs it, for the message (``"wandb.mode 'offline'"``).

    Raises:
        MissingExtraError: ``"<purpose> needs the <module> package: pip install
        'keras-asc[<extra>]'"``.
    """
    try:
        return importlib.import_module(module)
    except ImportError:
        extra = EXTRAS[module.split(".")[0]]
        raise MissingExtraError(
            f"{purpose} needs the {module} package: pip install 'keras-asc[{extra}]'"
        ) from None
