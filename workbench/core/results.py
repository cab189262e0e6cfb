"""What an experiment's `analyse` returns: figures (plotly JSON) and extra Markdown for its page."""

import dataclasses
from typing import Any


@dataclasses.dataclass
class Analysis:
    """`figures`: name -> plotly figure as a JSON-ready dict (`fig.to_plotly_json()`), shown in order.
    `markdown`: extra page sections (tables, notes), placed after the checks table.
    `captions`: optional name -> one-line caption under each figure."""

    figures: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    markdown: str = ""
    captions: dict[str, str] = dataclasses.field(default_factory=dict)
