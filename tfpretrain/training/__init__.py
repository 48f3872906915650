"""Metrics and callbacks."""

from tfpretrain.training.perplexity import Perplexity
from tfpretrain.training.callbacks import TrainingCurves, fit_resumable, plot_history_csv, training_callbacks
from tfpretrain.training.metrics import EntityF1, TokenAccuracy, entity_report
from tfpretrain.training.schedules import LinearWarmupDecay, SlantedTriangularLR
from tfpretrain.training.discriminative import DiscriminativeOptimizer, discriminative_optimizer
from tfpretrain.training.unfreezing import GradualUnfreezing
