"""Models: the hooked `Transformer`, the linear self-attention layer of ICL theory, and the circuit
graph type that compiled programs and discovery methods share."""

from . import params as params
from . import sites as sites
from ._config import ACT_FNS as ACT_FNS
from ._config import NORMALIZATION_TYPES as NORMALIZATION_TYPES
from ._config import TransformerConfig as TransformerConfig
from ._hooks import Cache as Cache
from ._hooks import Hooks as Hooks
from .causal_lsa import CausalLinearAttention as CausalLinearAttention
from .lsa import LinearSelfAttention as LinearSelfAttention
from .sites import Site as Site
from .transformer import Transformer as Transformer
from .transformer import run_with_cache as run_with_cache
from .transformer import run_with_hooks as run_with_hooks
from .circuit import Circuit as Circuit
from .circuit import Edge as Edge
from .circuit import EdgeOverlap as EdgeOverlap
from .circuit import Node as Node
from .circuit_plot import circuit_figure as circuit_figure
