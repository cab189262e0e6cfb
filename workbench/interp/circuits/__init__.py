"""Circuit discovery on one graph: the edge-masked forward, ablations, faithfulness, four methods, scoring."""

from .ablation import ABLATIONS as ABLATIONS
from .ablation import CircuitTask as CircuitTask
from .ablation import ablated_values as ablated_values
from .ablation import circuit_task as circuit_task
from .ablation import completeness as completeness
from .ablation import evaluate as evaluate
from .ablation import faithfulness as faithfulness
from .ablation import minimality as minimality
from .ablation import task_metric as task_metric
from .edges import EdgeLayout as EdgeLayout
from .edges import edge_layout as edge_layout
from .edges import masked_forward as masked_forward
from .edges import sender_outputs as sender_outputs
from .methods import METHODS as METHODS
from .methods import THRESHOLDS as THRESHOLDS
from .methods import Discovery as Discovery
from .methods import acdc as acdc
from .methods import cdt as cdt
from .methods import eap as eap
from .methods import path_patching as path_patching
from .methods import run_all as run_all
from .scoring import ROC as ROC
from .scoring import edge_roc as edge_roc
from .scoring import node_roc as node_roc
from .scoring import roc_from_scores as roc_from_scores
