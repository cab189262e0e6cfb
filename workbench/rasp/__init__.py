"""RASP: the language, its interpreter, and a compiler into `workbench.models.Transformer` whose
result carries the ground-truth circuit (a `workbench.models.Circuit`: which head or MLP computes
which expression, and which reads which)."""

from . import library as library
from .compiler import CompiledProgram as CompiledProgram
from .compiler import SampledValidationWarning as SampledValidationWarning
from .compiler import agreement as agreement
from .compiler import all_inputs as all_inputs
from .compiler import compile_program as compile_program
from .compiler import outputs_agree as outputs_agree
from .graph import listing as listing
from .inputs import sample_inputs as sample_inputs
from .interpreter import EvaluationError as EvaluationError
from .interpreter import evaluate as evaluate
from .interpreter import trace as trace
from .language import Aggregate as Aggregate
from .language import Comparison as Comparison
from .language import Full as Full
from .language import LinearSequenceMap as LinearSequenceMap
from .language import Map as Map
from .language import Select as Select
from .language import Selector as Selector
from .language import SelectorAnd as SelectorAnd
from .language import SelectorNot as SelectorNot
from .language import SelectorOr as SelectorOr
from .language import SelectorWidth as SelectorWidth
from .language import SequenceMap as SequenceMap
from .language import SOp as SOp
from .language import categorical as categorical
from .language import indices as indices
from .language import numerical as numerical
from .language import tokens as tokens
from .validate import CompileError as CompileError
