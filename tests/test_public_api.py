"""The library surface: every name facematch exports, and the protocol package's bounds."""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

import facematch
from facematch.engine import errors as engine_errors

SRC = Path(facematch.__file__).parent
WEB_FRAMEWORKS = ("fastapi", "starlette", "uvicorn", "sqlalchemy", "alembic")


def _modules_after(statement: str) -> set[str]:
    """Top-level modules loaded by ``statement`` in a fresh interpreter."""
    code = f"{statement}\nimport sys\nprint(' '.join(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    return {name.split(".")[0] for name in out.stdout.split()}


@pytest.mark.parametrize("name", facematch.__all__)
def test_every_exported_name_resolves_to_a_documented_object(name: str) -> None:
    value = getattr(facematch, name)
    assert name in dir(facematch)
    if inspect.ismodule(value):
        assert value is engine_errors
        return
    assert not name.startswith("_")
    if name == "ImageInput":  # a type alias, documented by its comment
        assert {bytes, str, facematch.Base64Image} <= set(value.__args__)
        return
    assert inspect.getdoc(value), f"facematch.{name} has no docstring"
    # Classes and functions are the engine's own, never a re-exported library's.
    assert value.__module__.startswith("facematch.engine"), value.__module__


def test_the_whole_error_tree_is_exported() -> None:
    tree = {
        name
        for name, value in vars(engine_errors).items()
        if inspect.isclass(value) and issubclass(value, engine_errors.EngineError)
    }
    assert tree <= set(facematch.__all__)
    assert facematch.NoFaceError is engine_errors.NoFaceError
    with pytest.raises(AttributeError):
        _ = facematch.DecodedImage  # engine internals are not on the surface


def test_import_facematch_loads_no_native_engine() -> None:
    loaded = _modules_after("import facematch; facematch.FaceMatcher; facematch.ImageLimits")
    assert not loaded & {"dlib", "onnxruntime", "fastapi"}


def test_the_protocol_package_imports_no_web_framework() -> None:
    statement = (
        "import facematch.protocol, facematch.protocol.canonical, "
        "facematch.protocol.signing, facematch.protocol.envelope"
    )
    loaded = _modules_after(statement)
    assert not loaded & set(WEB_FRAMEWORKS)
    assert "facematch_protocol" in loaded


def test_the_server_reaches_the_protocol_through_facematch_protocol_only() -> None:
    # One path: the facematch_protocol distribution is imported by
    # facematch/protocol/ and nowhere else in the server, which uses that package.
    imported: dict[str, set[str]] = {}
    for path in SRC.rglob("*.py"):
        if path.is_relative_to(SRC / "protocol"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            else:
                continue
            for name in names:
                imported.setdefault(name.split(".")[0], set()).add(str(path.relative_to(SRC)))
                if name.startswith("facematch.protocol"):
                    imported.setdefault("facematch.protocol", set()).add(str(path))
    assert "facematch_protocol" not in imported, imported.get("facematch_protocol")
    assert imported.get("facematch.protocol")  # the server does use it
