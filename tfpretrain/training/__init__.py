"""Training: schedules, discriminative rates, gradual unfreezing, metrics, callbacks, precision and distribution.

The names below are imported on first use (PEP 562), so that light modules
such as ``precision`` (whose constants the command line uses) do not import
TensorFlow.
"""

import importlib

_EXPORTS = {
    "Perplexity": "perplexity",
    "TrainingCurves": "callbacks", "fit_resumable": "callbacks", "plot_history_csv": "callbacks",
    "training_callbacks": "callbacks", "KeepBest": "callbacks",
    "EntityF1": "metrics", "TokenAccuracy": "metrics", "entity_report": "metrics",
    "LinearWarmupDecay": "schedules", "SlantedTriangularLR": "schedules",
    "DiscriminativeOptimizer": "discriminative", "discriminative_optimizer": "discriminative",
    "multi_rate_optimizer": "discriminative",
    "GradualUnfreezing": "unfreezing",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
