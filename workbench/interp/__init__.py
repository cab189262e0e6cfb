"""Instruments: activation/path/attribution patching, ablations, metrics, attention analyses, probes and CD-T."""

from . import attention as attention
from ._sites import COMPONENTS as COMPONENTS
from ._sites import SiteGrid as SiteGrid
from ._sites import site_grid as site_grid
from ._sites import site_set as site_set
from .metrics import KL as KL
from .metrics import L1 as L1
from .metrics import MSE as MSE
from .metrics import Output as Output
from .metrics import AbstractMetric as AbstractMetric
from .metrics import LogitDiff as LogitDiff
from .metrics import Loss as Loss
from .metrics import MeanLogitDiff as MeanLogitDiff
from .patching import ablation as ablation
from .patching import ablation_sources as ablation_sources
from .patching import activation_patching as activation_patching
from .patching import attribution_patching as attribution_patching
from .patching import path_patching as path_patching
from .patching import run_patched as run_patched
from .results import Named as Named
from .results import PatchResult as PatchResult
from .results import heatmap as heatmap
from .results import layer_head_heatmap as layer_head_heatmap
from .results import pos_layer_heatmap as pos_layer_heatmap
from . import cdt as cdt
from . import probes as probes
