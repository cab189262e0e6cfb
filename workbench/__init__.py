"""The workbench: train small transformers on synthetic tasks, take them apart, and report.

`import workbench as wb` gives `wb.models`, `wb.tasks`, `wb.train` and `wb.core`; the command line
is `wb` (or `python -m workbench.run`). Nothing here imports torch.
"""

from . import core as core
from . import models as models
from . import tasks as tasks
from . import train as train

__version__ = "0.1.0"
