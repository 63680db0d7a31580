"""The paper's Table 1 (ICL α and λ_ICL grids) from run directories.

Each run's ICL settings come from its ``config.yaml`` (``loss.icl_alpha``, ``loss.icl_weight``;
a key the config leaves out takes ``SceneClassifier``'s default). Its overall log-loss and
accuracy come from ``RUN_DIR/eval/<split>/report.json`` when ``scripts/evaluate.py`` already
wrote it for the same split (and data), otherwise the run is evaluated now (which writes that
report). The α search holds λ_ICL fixed (``--alpha-search-weight``, 10 in the paper), the λ_ICL
search holds α fixed (``--weight-search-alpha``, 0.2); several runs (seeds) at one grid point
are reduced to the best run (lowest log-loss) or to their mean (``--aggregate``).
"""

import json
import os

from asc_core.errors import UserError
from keras_asc.evaluation import runs as run_io

ALPHA_KEY = "loss.icl_alpha"
WEIGHT_KEY = "loss.icl_weight"


def _model_default(name):
    """``SceneClassifier``'s default for an ICL keyword, or None when it has no such argument."""
    import inspect

    from keras_asc.models.scene_classifier import SceneClassifier

    param = inspect.signature(SceneClassifier.__init__).parameters.get(name)
    if param is None or param.default is inspect.Parameter.empty:
        return None
    return param.default


def icl_settings(run):
    """``(alpha, weight)`` of a run; UserError when neither the config nor the model gives one."""
    values = []
    for key in (ALPHA_KEY, WEIGHT_KEY):
        value = run.get(key)
        if value is None:
            value = _model_default(key.split(".")[1])
        if value is None or isinstance(value, bool) or not isinstance(value, int | float):
            raise UserError(
                f"{os.path.join(run.path, run_io.CONFIG_FILE)}: {key} is "
                f"{'missing' if value is None else repr(value)}; expected a number (Table 1 "
                "needs ICL runs)"
            )
        values.append(float(value))
    return tuple(values)


def cached_report(run, split, data=None):
    """The run's ``eval/<split>/report.json`` when it is complete and matches; else None."""
    path = os.path.join(run_io.eval_dir(run.path, split), "report.json")
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        try:
            report = json.load(f)
        except ValueError:
            return None
    if report.get("split") != split or report.get("max_examples") is not None:
        return None
    if data is not None and os.path.abspath(report.get("data", "")) != os.path.abspath(data):
        return None
    return report if report.get("metrics") else None
