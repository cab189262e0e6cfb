"""Learned Transformer Programs (Friedman, Wettig and Chen 2023): a relaxed discrete transformer,
its argmax program, and decompilers to a standalone Python module and to a workbench RASP program."""

from .discrete import DiscreteProgram as DiscreteProgram
from .discrete import discretise as discretise
from .model import ProgramConfig as ProgramConfig
from .model import TransformerProgram as TransformerProgram
