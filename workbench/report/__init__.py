"""Report: result pages and the offline mkdocs site, drawn from run folders (imports only core)."""

from .folders import scan_groups as scan_groups
from .pages import write_pages as write_pages
from .site import build_site as build_site
