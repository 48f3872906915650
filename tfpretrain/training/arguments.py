"""Range checks of the numeric arguments the training and inference jobs share (epochs, batch sizes, rates, ...).

One table, `NUMERIC_ARGUMENTS`, says which values each argument name
accepts; the command line builds its argparse ``type=`` functions from the
same checks (`positive_int`, `non_negative_int`, `positive_float`,
`non_negative_float`, `probability`), and `check_arguments` applies the table
to a job's keyword arguments, so a Python caller gets a ValueError naming
the argument before anything is read or written, instead of a traceback
from deep inside Keras or an untrained model (``epochs=0``).
`tfpretrain.training.precision.uses_precision` calls it for every training job.

Example:

>>> check_arguments(epochs=3, batch_size=0)
Traceback (most recent call last):
ValueError: batch_size must be a whole number >= 1, got 0
"""

import dataclasses
import math
import numbers


def _number(value, integer):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    if integer:
        if isinstance(value, numbers.Integral):
            return int(value)
        return int(value) if float(value).is_integer() else None
    value = float(value)
    return value if math.isfinite(value) else None


class _Range:
    """A named range check: ``integer`` or real, above ``low`` (``low_included``), at most ``high``."""

    def __init__(self, description, integer, low, low_included=True, high=None):
        self.description, self.integer, self.low, self.low_included, self.high = (
            description, integer, low, low_included, high)

    def accepts(self, value):
        number = _number(value, self.integer)
        if number is None:
            return None
        above = number >= self.low if self.low_included else number > self.low
        return number if above and (self.high is None or number <= self.high) else None


POSITIVE_INT = _Range("a whole number >= 1", True, 1)
NON_NEGATIVE_INT = _Range("a whole number >= 0", True, 0)
POSITIVE_FLOAT = _Range("a number > 0", False, 0.0, low_included=False)
NON_NEGATIVE_FLOAT = _Range("a number >= 0", False, 0.0)
PROBABILITY = _Range("a probability in (0, 1]", False, 0.0, low_included=False, high=1.0)

# Argument name -> accepted values; None always means "the default".
NUMERIC_ARGUMENTS = {
    **dict.fromkeys(("epochs", "general_epochs", "domain_epochs", "steps", "steps_per_epoch",
                     "general_steps_per_epoch", "domain_steps_per_epoch", "batch_size", "lm_batch_size",
                     "sequence_length", "vocabulary_size", "max_vocabulary", "max_vocabulary_size",
                     "max_train_examples", "doc_stride", "max_query_length", "max_answer_length", "logical_cpus",
                     "max_new_tokens", "k", "head_hidden_dim"), POSITIVE_INT),
    **dict.fromkeys(("seed", "min_count", "version"), NON_NEGATIVE_INT),
    **dict.fromkeys(("learning_rate", "general_learning_rate", "domain_learning_rate", "head_learning_rate",
                     "crf_learning_rate", "decay", "temperature"), POSITIVE_FLOAT),
    **dict.fromkeys(("lm_loss_weight", "dropout_scale", "warmup"), NON_NEGATIVE_FLOAT),
    "p": PROBABILITY,
}


def check_argument(name, value, allowed=None):
    """Returns ``value`` (an int for whole-number ranges) if it is in ``allowed``; a ValueError naming ``name`` if not.

    Args:
        name: str. The argument's name, as the message shows it.
        value: the value; None passes (the job's default).
        allowed: one of the ranges above; defaults to ``NUMERIC_ARGUMENTS[name]``.
    """
    allowed = allowed or NUMERIC_ARGUMENTS[name]
    if value is None:
        return None
    number = allowed.accepts(value)
    if number is None:
        raise ValueError(f"{name} must be {allowed.description}, got {value!r}")
    return number


def check_arguments(**arguments):
    """Checks every argument named in `NUMERIC_ARGUMENTS` (others pass); see `check_argument`.

    Dicts of further keyword arguments and dataclasses of options (e.g. the
    ULMFiT classifier's ``ClassifierOptions``) are looked into.
    """
    for name, value in arguments.items():
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            check_arguments(**{field.name: getattr(value, field.name) for field in dataclasses.fields(value)})
        elif isinstance(value, dict) and all(isinstance(key, str) for key in value):
            check_arguments(**value)
        elif name in NUMERIC_ARGUMENTS:
            check_argument(name, value)


def _argparse_type(allowed, integer):
    import argparse

    def parse(text):
        try:
            value = int(text) if integer else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {allowed.description}, got {text!r}") from None
        if allowed.accepts(value) is None:
            raise argparse.ArgumentTypeError(f"expected {allowed.description}, got {text!r}")
        return value

    parse.__name__ = allowed.description  # argparse names the type in some messages
    return parse


# argparse ``type=`` functions: argparse prints "argument --epochs: expected a whole number >= 1, got '0'", exit 2.
positive_int = _argparse_type(POSITIVE_INT, True)
non_negative_int = _argparse_type(NON_NEGATIVE_INT, True)
positive_float = _argparse_type(POSITIVE_FLOAT, False)
non_negative_float = _argparse_type(NON_NEGATIVE_FLOAT, False)
probability = _argparse_type(PROBABILITY, False)
