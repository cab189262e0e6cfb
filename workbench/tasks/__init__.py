"""Synthetic tasks: pure samplers `key -> batch`, each with its reference predictors.

`workbench.tasks.registry.describe_tasks()` lists every task (also `wb list --tasks`, docs/tasks.md).
"""

from . import algorithmic as algorithmic
from . import boolean as boolean
from . import classification as classification
from . import markov as markov
from . import predictors as predictors
from . import regression as regression
from . import regression_family as regression_family
from ._base import AbstractTask as AbstractTask
from ._base import RegressionBatch as RegressionBatch
from .algorithmic import AlgorithmicBatch as AlgorithmicBatch
from .algorithmic import Copy as Copy
from .algorithmic import DoubleHist as DoubleHist
from .algorithmic import Dyck as Dyck
from .algorithmic import Hist as Hist
from .algorithmic import Induction as Induction
from .algorithmic import MostFreq as MostFreq
from .algorithmic import Reverse as Reverse
from .algorithmic import Sort as Sort
from .boolean import BooleanBatch as BooleanBatch
from .boolean import Conjunction as Conjunction
from .boolean import Disjunction as Disjunction
from .boolean import Majority as Majority
from .boolean import SparseParity as SparseParity
from .classification import ClassificationBatch as ClassificationBatch
from .classification import InContextClassification as InContextClassification
from .markov import DirichletMarkovICL as DirichletMarkovICL
from .markov import FixedMarkovSource as FixedMarkovSource
from .markov import MarkovBatch as MarkovBatch
from .regression import LinearRegression as LinearRegression
from .regression_family import ARProcess as ARProcess
from .regression_family import DecisionTreeRegression as DecisionTreeRegression
from .regression_family import FinitePoolRegression as FinitePoolRegression
from .regression_family import FunctionBatch as FunctionBatch
from .regression_family import ReLUNetRegression as ReLUNetRegression
from .regression_family import RepresentationBatch as RepresentationBatch
from .regression_family import RepresentationRegression as RepresentationRegression
from .regression_family import SparseLinearRegression as SparseLinearRegression
from .regression_family import TrajectoryBatch as TrajectoryBatch
from .regression_family import ill_conditioned_covariance as ill_conditioned_covariance
