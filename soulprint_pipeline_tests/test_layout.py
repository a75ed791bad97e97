"""The library stays usable without Dagster: only ``defs/``, ``definitions.py`` and the CLI may
import it (read from the source, so an import inside a function counts too)."""

from __future__ import annotations

import ast
from pathlib import Path

import soulprint_pipeline

PACKAGE = Path(soulprint_pipeline.__file__).parent
DAGSTER_LAYER = {"definitions.py", "cli.py"}
FORBIDDEN = ("dagster", "dagster_", "soulprint_pipeline.defs", "soulprint_pipeline.definitions")


def _imports(path: Path, *, with_typing: bool = True) -> set[str]:
    """The modules ``path`` imports (``from a import b`` counts as ``a`` and ``a.b``); without
    ``with_typing``, imports under ``if TYPE_CHECKING:`` are left out (they never run)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    skipped: set[ast.AST] = set()
    if not with_typing:
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
                skipped.update(ast.walk(node))
    names: set[str] = set()
    for node in ast.walk(tree):
        if node in skipped:
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_the_library_imports_no_dagster() -> None:
    library = [
        path
        for path in PACKAGE.rglob("*.py")
        if "defs" not in path.relative_to(PACKAGE).parts and path.name not in DAGSTER_LAYER
    ]
    assert len(library) > 10
    assert "dagster" in _imports(PACKAGE / "defs" / "assets.py")  # the reading finds them
    offenders = {
        str(path.relative_to(PACKAGE)): sorted(n for n in _imports(path) if n.startswith(FORBIDDEN))
        for path in library
    }
    assert {path: names for path, names in offenders.items() if names} == {}


def test_no_production_module_imports_the_testing_package() -> None:
    # the generator, its pools and its ground truth are for tests and benchmarks only
    users = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if "testing" not in path.relative_to(PACKAGE).parts
        and any(f"{name}.".startswith("soulprint_pipeline.testing.") for name in _imports(path))
    ]
    assert "soulprint_pipeline.testing.pools" in _imports(PACKAGE / "testing" / "synthetic.py")
    assert users == []


def test_dependencies_go_one_way() -> None:
    # the reader uses the parallel parse, never the other way (it is handed the parser it
    # runs); the Dagster resources do not import the IO manager that is built on them
    parallel, reader = PACKAGE / "export" / "parallel.py", PACKAGE / "export" / "reader.py"
    assert "soulprint_pipeline.export.parallel" in _imports(reader, with_typing=False)
    assert "soulprint_pipeline.export.reader" not in _imports(parallel, with_typing=False)
    assert "soulprint_pipeline.export.reader" in _imports(parallel)  # only for its types
    resources = _imports(PACKAGE / "defs" / "resources.py", with_typing=False)
    assert "soulprint_pipeline.defs.io_manager" not in resources


def test_the_offline_model_builds_on_the_evidence() -> None:
    # evidence <- facts, themes <- offline: the statistics know nothing of what reads them
    allowed = {
        "evidence": set(),
        "facts": {"evidence"},
        "themes": {"evidence"},
        "offline": {"evidence", "facts", "themes"},
    }
    for name in allowed:
        imported = _imports(PACKAGE / "soulprint" / f"{name}.py")
        layers = {other for other in allowed if f"soulprint_pipeline.soulprint.{other}" in imported}
        assert layers == allowed[name], name
