"""A Griffe extension for the site: a docstring's ``Example:`` section renders as examples.

Griffe's Google parser knows ``Examples:`` but reads a singular ``Example:`` as an admonition,
whose ``>>>`` lines would render as Markdown text. Napoleon and the Google style guide take both.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_EXAMPLE = re.compile(r"^(\s*)Example:[ \t]*$", re.M)


class ExampleSections(griffe.Extension):
    """Rewrites ``Example:`` section headers to ``Examples:`` before docstrings are parsed."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _EXAMPLE.sub(r"\1Examples:", obj.docstring.value)
