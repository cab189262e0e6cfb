"""Shared foundations: axis glossary, seed streams, config helpers, errors, checks."""

from .checks import Check as Check
from .config import config_hash as config_hash
from .config import config_to_dict as config_to_dict
from .config import apply_overrides as apply_overrides
from .errors import WorkbenchError as WorkbenchError
from .rng import batch_key as batch_key
from .rng import derive_key as derive_key
from .rng import seed_streams as seed_streams
from .results import Analysis as Analysis
from .results import CheckSummary as CheckSummary
from .results import GroupSummary as GroupSummary
from .results import SeedSummary as SeedSummary
from .results import aggregate_checks as aggregate_checks
