"""Report: the scoreboard, result pages and the offline mkdocs site, drawn from run folders (imports only core)."""

from .notebooks import execute_notebook as execute_notebook
from .pages import write_pages as write_pages
from .scoreboard import Planned as Planned
from .site import build_site as build_site, git_commit as git_commit
from .summaries import read_group as read_group, scan_runs as scan_runs
