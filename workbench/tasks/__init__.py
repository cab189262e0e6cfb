"""Synthetic tasks: pure samplers `key -> batch`, each with its reference predictors."""

from . import regression as regression
from ._base import AbstractTask as AbstractTask
from ._base import RegressionBatch as RegressionBatch
from .regression import LinearRegression as LinearRegression
