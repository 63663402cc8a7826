"""Generated blocks of docs/: the text between ``<!-- BEGIN name -->`` and
``<!-- END name -->`` markers must equal what the code generates.
``FACEMATCH_UPDATE_DOCS=1`` rewrites the blocks instead of checking them."""

from __future__ import annotations

import os
import re
from pathlib import Path

UPDATE = os.environ.get("FACEMATCH_UPDATE_DOCS") == "1"


def check_block(path: Path, marker: str, content: str, *, test_file: str) -> None:
    """Assert the ``marker`` block of ``path`` is ``content`` (or write it, when updating);
    a stale block's message names ``test_file`` to re-run with the update flag."""
    text = path.read_text(encoding="utf-8")
    pattern = re.compile(rf"(<!-- BEGIN {marker} -->\n)(.*?)(\n<!-- END {marker} -->)", re.DOTALL)
    match = pattern.search(text)
    assert match, f"{path.name} lacks the {marker} markers"
    if UPDATE:
        path.write_text(text[: match.start(2)] + content + text[match.end(2) :], encoding="utf-8")
        return
    assert match.group(2) == content, (
        f"{path.name} {marker} table is stale: run FACEMATCH_UPDATE_DOCS=1 pytest {test_file}"
    )
