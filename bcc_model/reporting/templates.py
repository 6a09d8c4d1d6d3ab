"""The Jinja2 environment every document is rendered with (model card, HTML report).

Why templates: the documents' wording and layout live in ``reporting/templates/`` where they
can be read and edited as documents, and the Python side only computes the values. HTML
templates (``*.html.j2``) autoescape, so a file name such as ``<script>…`` can only ever
appear as text; Markdown templates (``*.md.j2``) do not, since Markdown is not HTML. A
modality's own sections live beside it (``modalities/<key>``) and extend the core template.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

from bcc_model.reporting.formatting import FILTERS

__all__ = ["render"]


def _autoescape(name: str | None) -> bool:
    return bool(name) and name.endswith(".html.j2")


@lru_cache(maxsize=None)
def _environment(folder: str | None = None) -> jinja2.Environment:
    """The environment over ``reporting/templates/``, with ``folder`` (a modality's) searched first."""
    package = jinja2.PackageLoader("bcc_model.reporting", "templates")
    environment = jinja2.Environment(
        loader=jinja2.ChoiceLoader([jinja2.FileSystemLoader(folder), package]) if folder else package,
        autoescape=_autoescape,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    environment.filters.update(FILTERS)
    return environment


def render(name: str | Path, **context: Any) -> str:
    """Render the template ``name`` (under ``reporting/templates/``, or a path to a modality's own
    template, which may extend the core's) with ``context``."""
    if isinstance(name, Path):
        return _environment(str(name.parent)).get_template(name.name).render(**context)
    return _environment().get_template(name).render(**context)
