"""Training: a jitted, vmapped step, a resumable loop with metrics and atomic checkpoints."""

from . import checkpoint as checkpoint
from .loop import Schedule as Schedule
from .loop import load_trained as load_trained
from .loop import make_step as make_step
from .loop import stack as stack
from .loop import train as train
from .loop import unstack as unstack
