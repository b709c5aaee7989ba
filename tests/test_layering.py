"""The package's layers, read from its import graph (every import, those inside functions too; imports
only for type checkers left out): no cycle, pure endpoints, sources apart from the client, media work
(audio) apart from everything that sends, an emulator that knows nothing of the client or the engines,
and no module using another's private names."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "pipeline"

# Calls that do file or storage I/O: an endpoint says what must be read or written, a source or sink does it.
# (str.replace and friends share names with Path's renames: those are left to the import check of os/shutil.)
FILE_IO_CALLS = {"open", "read_bytes", "read_text", "write_bytes", "write_text", "stat", "exists", "is_file",
                 "is_dir", "iterdir", "rglob", "unlink", "mkdir", "fsync", "read_all", "open_input_stream",
                 "open_input_file", "open_output_stream"}
ENGINES = ("pipeline.runner", "pipeline.online", "pipeline.batch", "pipeline.core", "pipeline.wiring")


@dataclass(frozen=True)
class Import:
    importer: str
    target: str  # a module of the package
    names: tuple[str, ...]  # names imported from it (empty for `import x`)
    line: int


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def _type_checking_lines(tree: ast.Module) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def _resolve(importer: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    is_package = MODULES[importer].name == "__init__.py"
    base = importer.split(".")[: len(importer.split(".")) - node.level + (1 if is_package else 0)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(name: str) -> Iterator[Import]:
    tree = ast.parse(MODULES[name].read_text(), str(MODULES[name]))
    typing_only = _type_checking_lines(tree)
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in typing_only:
            continue
        if isinstance(node, ast.Import):
            yield from (Import(name, a.name, (), node.lineno) for a in node.names if a.name in MODULES)
        elif isinstance(node, ast.ImportFrom):
            yield from _from_import(name, node)


def _from_import(name: str, node: ast.ImportFrom) -> Iterator[Import]:
    source = _resolve(name, node)
    if source not in MODULES:
        return
    submodules = [a.name for a in node.names if f"{source}.{a.name}" in MODULES]
    for sub in submodules:  # `from pipeline.sinks import files` imports the module files
        yield Import(name, f"{source}.{sub}", (), node.lineno)
    plain = tuple(a.name for a in node.names if a.name not in submodules)
    if plain:
        yield Import(name, source, plain, node.lineno)


GRAPH = [edge for name in sorted(MODULES) for edge in imports_of(name)]


def _within(module: str, *prefixes: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def _cycles() -> list[list[str]]:
    edges: dict[str, set[str]] = {name: set() for name in MODULES}
    for edge in GRAPH:
        if edge.target != edge.importer:
            edges[edge.importer].add(edge.target)
    found: list[list[str]] = []
    state: dict[str, int] = {}  # 1 on the path, 2 done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                found.append([*path[path.index(nxt):], nxt])
            elif nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for name in sorted(edges):
        if name not in state:
            visit(name)
    return found


def test_no_import_cycle() -> None:
    assert _cycles() == []


@pytest.mark.parametrize(("layer", "forbidden"), [
    ("pipeline.endpoints", ("pipeline.client", "pipeline.sinks", "pipeline.storage", "pipeline.checkpoint",
                            *ENGINES)),  # a source's Row is plain data: endpoints may name it
    ("pipeline.sources", ("pipeline.client", *ENGINES)),
    # audio is media work only (decode, cut, encode): what is sent, and how, is the endpoint's and the engine's
    ("pipeline.audio", ("pipeline.client", "pipeline.endpoints", "pipeline.sinks", "pipeline.sources",
                        "pipeline.storage", "pipeline.checkpoint", "pipeline.emulator", *ENGINES)),
    ("pipeline.emulator", ("pipeline.client", "pipeline.sinks", "pipeline.sources", "pipeline.checkpoint",
                           *ENGINES)),
])
def test_layer_does_not_import(layer: str, forbidden: tuple[str, ...]) -> None:
    wrong = [f"{e.importer}:{e.line} imports {e.target}" for e in GRAPH
             if _within(e.importer, layer) and _within(e.target, *forbidden)]
    assert wrong == []


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def test_no_private_name_of_another_module_is_imported() -> None:
    wrong = [f"{e.importer}:{e.line} imports {name} from {e.target}" for e in GRAPH
             for name in e.names if _private(name) and e.target != e.importer]
    assert wrong == []


def _io_calls(path: Path) -> Iterator[str]:
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            called = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            if called in FILE_IO_CALLS:
                yield f"{path.relative_to(ROOT)}:{node.lineno} calls {called}()"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            named = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
            if any(n.split(".")[0] in ("os", "shutil", "tempfile", "pyarrow.fs") or n == "pyarrow.fs" for n in named):
                yield f"{path.relative_to(ROOT)}:{node.lineno} imports {', '.join(filter(None, named))}"


def test_endpoints_do_no_file_io() -> None:
    wrong = [call for name, path in MODULES.items() if _within(name, "pipeline.endpoints")
             for call in _io_calls(path)]
    assert wrong == []


def test_the_graph_is_read() -> None:
    """The checks above see the package: a broken reader would pass them all."""
    assert len(MODULES) > 50
    assert any(e.importer == "pipeline.endpoints.embeddings" and e.target == "pipeline.endpoints.base" for e in GRAPH)
    assert _within("pipeline.client.service", "pipeline.client") and not _within("pipeline.clients", "pipeline.client")
