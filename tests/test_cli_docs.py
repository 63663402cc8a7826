"""The CLI reference cannot drift: every command, every option's environment variable,
and every ``FACEMATCH_*`` name the code reads is in docs/.

docs/cli.md carries two tables generated from the live click tree (between
``<!-- BEGIN x -->`` / ``<!-- END x -->`` markers); rewrite them with
``FACEMATCH_UPDATE_DOCS=1 pytest tests/test_cli_docs.py`` after changing a command.
The service settings are listed in docs/configuration.md (tests/service/test_docs.py).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

import facematch.cli
from facematch.cli import cli
from facematch.settings import Settings
from tests.doc_blocks import check_block

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
SOURCES = ROOT / "src" / "facematch"
VARIABLE = re.compile(r"FACEMATCH_[A-Z0-9_]*[A-Z0-9]")


def _commands() -> Iterator[tuple[str, click.Command]]:
    """Every command under ``facematch``, groups included, as ("admin bootstrap", cmd)."""

    def walk(command: click.Command, path: tuple[str, ...]) -> Iterator[tuple[str, click.Command]]:
        if path:
            yield " ".join(path), command
        if isinstance(command, click.Group):
            for name, sub in sorted(command.commands.items()):
                yield from walk(sub, (*path, name))

    yield from walk(cli, ())


def _envvars(command: click.Command) -> Iterator[tuple[str, click.Parameter]]:
    for param in command.params:
        names = param.envvar if isinstance(param.envvar, list | tuple) else [param.envvar]
        for name in names:
            if name:
                yield name, param


def commands_table() -> str:
    lines = ["| command | what it does |", "|---|---|"]
    for path, command in _commands():
        summary = command.get_short_help_str(limit=120).replace("|", "\\|")
        lines.append(f"| `facematch {path}` | {summary} |")
    return "\n".join(lines)


def envvars_table() -> str:
    uses: dict[str, dict[str, list[str]]] = {}  # variable → option → commands
    for path, command in _commands():
        for name, param in _envvars(command):
            option = "/".join(param.opts) if isinstance(param, click.Option) else param.name or ""
            uses.setdefault(name, {}).setdefault(option, []).append(path)
    lines = ["| variable | option | commands |", "|---|---|---|"]
    for name in sorted(uses):
        for option, paths in sorted(uses[name].items()):
            where = ", ".join(f"`{p}`" for p in paths)
            lines.append(f"| `{name}` | `{option}` | {where} |")
    return "\n".join(lines)


def _all_docs() -> str:
    return "\n".join(
        p.read_text(encoding="utf-8") for p in sorted([*DOCS.glob("*.md"), ROOT / "README.md"])
    )


def _named_in_source() -> dict[str, str]:
    """Every FACEMATCH_* name in a string of src/facematch (os.environ reads, click
    envvars, messages), with the first file that names it."""
    found: dict[str, str] = {}
    for path in sorted(SOURCES.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                for name in VARIABLE.findall(node.value):
                    found.setdefault(name, str(path.relative_to(ROOT)))
    return found


def test_cli_doc_lists_every_command() -> None:
    check_block(DOCS / "cli.md", "cli-commands", commands_table(), test_file=__file__)


def test_cli_doc_lists_every_option_variable() -> None:
    check_block(DOCS / "cli.md", "cli-envvars", envvars_table(), test_file=__file__)


def test_every_variable_the_code_reads_is_documented() -> None:
    docs = _all_docs()
    read = {f"FACEMATCH_{name.upper()}": "settings.py" for name in Settings.model_fields}
    read.update(_named_in_source())
    for _, command in _commands():
        read.update({name: "cli" for name, _ in _envvars(command)})
    missing = {name: where for name, where in read.items() if name not in docs}
    assert not missing, f"FACEMATCH_* variables read but not documented in docs/: {missing}"


def test_every_documented_variable_is_read_somewhere() -> None:
    """A variable in docs/ that no code reads is a setting that went away."""
    read = {f"FACEMATCH_{name.upper()}" for name in Settings.model_fields}
    for _, command in _commands():
        read |= {name for name, _ in _envvars(command)}
    code = "\n".join(
        p.read_text(encoding="utf-8")
        for folder in ("src", "tests", "bench")
        for p in (ROOT / folder).rglob("*.py")
    )
    code += (ROOT / "Makefile").read_text(encoding="utf-8")
    # A name followed by `_*` stands for a family (FACEMATCH_TOKEN_THROTTLE_*), not one variable.
    documented = {
        m.group(0) for m in VARIABLE.finditer(_all_docs()) if not m.string.startswith("_*", m.end())
    }
    dead = sorted(name for name in documented if name not in read and name not in code)
    assert not dead, f"documented in docs/ but read by nothing: {dead}"


def test_the_cli_reads_no_implicit_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """An option reads only the variable it names (the tables above): click's
    auto_envvar_prefix would add an undocumented FACEMATCH_<COMMAND>_<OPTION> for
    every other option (FACEMATCH_SERVE_PORT beside the setting FACEMATCH_PORT)."""
    seen: dict[str, object] = {}
    monkeypatch.setattr(cli, "main", lambda *args, **options: seen.update(options))
    facematch.cli.main()
    assert "auto_envvar_prefix" not in seen
