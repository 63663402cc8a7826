"""The service's layering, read from the source: what each layer may import."""

from __future__ import annotations

import ast
from pathlib import Path

import facematch.service

SERVICE = Path(facematch.service.__file__).parent
WEB_FRAMEWORKS = ("fastapi", "starlette", "uvicorn")
# What the service may take from SQLAlchemy: sessions to pass on, and the driver's
# errors to translate. Queries (select, update, delete, text, func …) belong to store/.
SQLALCHEMY_ALLOWED = {"sqlalchemy.orm": {"Session", "sessionmaker"}, "sqlalchemy.exc": None}


def _imports(path: Path) -> list[tuple[str, str | None]]:
    """(module, name) for every import of ``path``, at any depth."""
    found: list[tuple[str, str | None]] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.extend((alias.name, None) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.extend((node.module, alias.name) for alias in node.names)
    return found


def _modules(*parts: str) -> list[Path]:
    return sorted(SERVICE.joinpath(*parts).rglob("*.py"))


def test_no_query_is_built_outside_the_store() -> None:
    offenders = []
    for path in _modules():
        for module, name in _imports(path):
            if module != "sqlalchemy" and not module.startswith("sqlalchemy."):
                continue
            allowed = SQLALCHEMY_ALLOWED.get(module, set())
            if allowed is not None and name not in allowed:
                offenders.append(f"{path.relative_to(SERVICE)}: {module}.{name}")
    assert not offenders, offenders


def test_the_application_layer_and_the_error_tree_know_no_web_framework() -> None:
    paths = [*_modules("application"), SERVICE / "errors.py"]
    offenders = [
        f"{path.relative_to(SERVICE)}: {module}"
        for path in paths
        for module, _name in _imports(path)
        if module.split(".")[0] in WEB_FRAMEWORKS or module.startswith("facematch.service.api")
    ]
    assert not offenders, offenders


def test_runtime_uses_neither_the_routes_nor_the_use_cases() -> None:
    offenders = [
        f"{path.relative_to(SERVICE)}: {module}"
        for path in _modules("runtime")
        for module, _name in _imports(path)
        if module.startswith(("facematch.service.api", "facematch.service.application"))
    ]
    assert not offenders, offenders


def _reads_app_state(path: Path) -> bool:
    """Whether ``path`` touches ``app.state`` (``request.app.state``, ``app.state``)."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute) and node.attr == "state":
            owner = node.value
            if (isinstance(owner, ast.Name) and owner.id == "app") or (
                isinstance(owner, ast.Attribute) and owner.attr == "app"
            ):
                return True
    return False


def test_only_the_composition_root_and_the_dependencies_touch_app_state() -> None:
    # Routes and middleware get what the app was built from as typed dependencies.
    allowed = {SERVICE / "app.py", SERVICE / "api" / "deps.py"}
    offenders = [
        str(path.relative_to(SERVICE))
        for path in _modules()
        if path not in allowed and _reads_app_state(path)
    ]
    assert not offenders, offenders


def test_routes_reach_the_store_only_through_the_use_cases() -> None:
    # The HTTP layer parses, calls a use case and maps its answer; the repository's
    # queries and writes are the application layer's to call.
    offenders = [
        f"{path.relative_to(SERVICE)}: {module}"
        for path in _modules("api")
        for module, name in _imports(path)
        if module == "facematch.store.repository"
        or (module == "facematch.store" and name == "repository")
    ]
    assert not offenders, offenders
