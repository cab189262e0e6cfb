"""mkdocs hook (named in mkdocs.yml): list the generated result pages and executed notebooks in the nav.

The nav's "Results" and "Notebooks" sections name their index page; every other `results/*.md`
(except `_*.md`, which are included snippets) and `notebooks/*.ipynb` present at build time follows it.
"""

from pathlib import Path

SECTIONS = {"Results": ("results", "*.md"), "Notebooks": ("notebooks", "*.ipynb")}


def on_config(config):
    docs = Path(config["docs_dir"])
    for entry in config["nav"] or []:
        if not isinstance(entry, dict):
            continue
        for title, pages in entry.items():
            if title in SECTIONS and isinstance(pages, list):
                folder, pattern = SECTIONS[title]
                listed = {p if isinstance(p, str) else next(iter(p.values())) for p in pages}
                for path in sorted((docs / folder).glob(pattern)):
                    name = f"{folder}/{path.name}"
                    if name not in listed and path.name != "index.md" and not path.name.startswith("_"):
                        pages.append(name)
    return config
