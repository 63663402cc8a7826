"""The docs stay in sync with the code: settings, endpoints, the error catalogue and tree.

The generated tables sit between ``<!-- BEGIN x -->`` / ``<!-- END x -->``
markers. Run ``FACEMATCH_UPDATE_DOCS=1 pytest tests/service/test_docs.py`` to
rewrite them after changing the catalogue or the settings.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from pydantic_core import PydanticUndefined

from facematch.service.app import create_app
from facematch.service.errors import CATALOGUE
from facematch.settings import Settings
from tests.service.test_errors import drawn_error_tree

DOCS = Path(__file__).resolve().parents[2] / "docs"
UPDATE = os.environ.get("FACEMATCH_UPDATE_DOCS") == "1"


def catalogue_table() -> str:
    lines = [
        "| HTTP | error_code | name | English | العربية |",
        "|---|---|---|---|---|",
    ]
    for entry in sorted(CATALOGUE.values(), key=lambda e: e.code):
        name = f"`{entry.name}`" + (f" (`{entry.oauth_error}`)" if entry.oauth_error else "")
        lines.append(f"| {entry.status} | {entry.code} | {name} | {entry.en} | {entry.ar} |")
    return "\n".join(lines)


def _default(field_name: str) -> str:
    field = Settings.model_fields[field_name]
    if field.default_factory is not None:
        return "(computed, see description)"
    if field.default is PydanticUndefined:
        return "(required)"
    if field.default is None:
        return "unset"
    return f"`{field.default}`"


def settings_table() -> str:
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        description = (field.description or "").replace("|", "\\|")
        lines.append(f"| `FACEMATCH_{name.upper()}` | {_default(name)} | {description} |")
    return "\n".join(lines)


def _check_block(path: Path, marker: str, content: str) -> None:
    text = path.read_text(encoding="utf-8")
    pattern = re.compile(rf"(<!-- BEGIN {marker} -->\n)(.*?)(\n<!-- END {marker} -->)", re.DOTALL)
    match = pattern.search(text)
    assert match, f"{path.name} lacks the {marker} markers"
    if UPDATE:
        path.write_text(text[: match.start(2)] + content + text[match.end(2) :], encoding="utf-8")
        return
    assert match.group(2) == content, (
        f"{path.name} {marker} table is stale: run FACEMATCH_UPDATE_DOCS=1 pytest {__file__}"
    )


def test_api_doc_lists_the_catalogue() -> None:
    _check_block(DOCS / "api.md", "catalogue", catalogue_table())


def test_architecture_doc_draws_the_error_tree_of_the_code() -> None:
    # The docstring's drawing, itself checked against the classes in test_errors.py.
    _check_block(DOCS / "architecture.md", "error-tree", f"```\n{drawn_error_tree()}\n```")


def test_configuration_doc_lists_every_setting() -> None:
    _check_block(DOCS / "configuration.md", "settings", settings_table())
    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    for name in Settings.model_fields:
        assert f"FACEMATCH_{name.upper()}" in text


def test_api_doc_shows_every_endpoint() -> None:
    text = (DOCS / "api.md").read_text(encoding="utf-8")
    schema = create_app(Settings()).openapi()
    for path in schema["paths"]:
        assert path in text, f"docs/api.md does not describe {path}"
