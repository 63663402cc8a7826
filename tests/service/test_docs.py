"""The docs stay in sync with the code: settings, endpoints, the error catalogue and tree.

The generated tables sit between ``<!-- BEGIN x -->`` / ``<!-- END x -->``
markers. Run ``FACEMATCH_UPDATE_DOCS=1 pytest tests/service/test_docs.py`` to
rewrite them after changing the catalogue or the settings.
"""

from __future__ import annotations

from pathlib import Path

from pydantic_core import PydanticUndefined

from facematch.service.app import create_app
from facematch.service.errors import CATALOGUE
from facematch.settings import Settings
from tests.doc_blocks import check_block
from tests.service.test_errors import drawn_error_tree

DOCS = Path(__file__).resolve().parents[2] / "docs"


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


def test_api_doc_lists_the_catalogue() -> None:
    check_block(DOCS / "api.md", "catalogue", catalogue_table(), test_file=__file__)


def test_architecture_doc_draws_the_error_tree_of_the_code() -> None:
    # The docstring's drawing, itself checked against the classes in test_errors.py.
    check_block(
        DOCS / "architecture.md",
        "error-tree",
        f"```\n{drawn_error_tree()}\n```",
        test_file=__file__,
    )


def test_configuration_doc_lists_every_setting() -> None:
    check_block(DOCS / "configuration.md", "settings", settings_table(), test_file=__file__)
    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    for name in Settings.model_fields:
        assert f"FACEMATCH_{name.upper()}" in text


def test_api_doc_shows_every_endpoint() -> None:
    text = (DOCS / "api.md").read_text(encoding="utf-8")
    schema = create_app(Settings()).openapi()
    for path in schema["paths"]:
        assert path in text, f"docs/api.md does not describe {path}"
