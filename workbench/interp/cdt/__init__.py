"""Contextual decomposition for transformers (CD-T, Hsu et al. 2025): any source to any target, batched.

Every activation is split as beta (due to the sources) + gamma (the rest), propagated by the
authors' rules (`_decomp`); `contributions` runs many sources at once (`vmap`) from the clean cache.
"""

from ._forward import SOURCE_COMPONENTS as SOURCE_COMPONENTS
from ._forward import walk as walk
from .scores import CDTResult as CDTResult
from .scores import Decomposition as Decomposition
from .scores import clean_cache as clean_cache
from .scores import contributions as contributions
from .scores import decompose as decompose
from .scores import heatmap as heatmap
from .scores import rank_correlation as rank_correlation
from .scores import top_sources as top_sources
from .sources import head_sources as head_sources
from .sources import input_sources as input_sources
from .sources import mean_reference as mean_reference
from .sources import mlp_sources as mlp_sources
from .discovery import discover as discover
from .discovery import node_scores as node_scores
from .discovery import node_sources as node_sources
from .discovery import nodes_of as nodes_of
