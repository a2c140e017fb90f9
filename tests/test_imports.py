"""How the package imports: the command line without torch, the lazy public API,
and no import cycle among the modules' module-level imports."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"


def _run(code: str) -> str:
    """Run ``code`` in a fresh interpreter (nothing imported yet); its stdout."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_command_line_and_its_help_import_no_torch():
    """`tea --help` and every command's --help build the whole parser: none of it may import torch
    (torch alone takes seconds to import)."""
    out = _run("import sys, teakit, teakit.cli\n"
               "assert 'torch' not in sys.modules, 'import teakit.cli imported torch'\n"
               "p = teakit.cli.build_parser()\n"
               "assert 'torch' not in sys.modules, 'build_parser imported torch'\n"
               "sub = next(a for a in p._actions if a.__class__.__name__ == '_SubParsersAction')\n"
               "for name, c in sub.choices.items():\n"
               "    c.format_help()\n"
               "assert 'torch' not in sys.modules, 'a --help imported torch'\n"
               "print(sorted(sub.choices))\n")
    assert "distill" in out and "train" in out


def test_every_dataset_name_comes_from_one_list():
    from teakit import cli, commands, data
    from teakit.data import names

    assert names.DATASETS == names.BUILTIN + names.DISK_DATASETS
    assert data.BUILTIN is names.BUILTIN and commands.DISK_DATASETS is names.DISK_DATASETS
    assert cli.DATASETS is names.DATASETS and cli.DISK is names.DISK_DATASETS


def test_the_public_api_is_imported_on_first_use():
    out = _run("import sys, teakit\n"
               "assert 'torch' not in sys.modules, 'import teakit imported torch'\n"
               "assert teakit.__version__\n"
               "missing = [n for n in teakit.__all__ if not hasattr(teakit, n)]\n"
               "assert not missing, f'teakit.__all__ names that do not resolve: {missing}'\n"
               "print(sorted(teakit.__all__))\n")
    for name in ("explain", "heatmap_loss", "TEA", "ImageSet", "SmallCNN", "build_model", "evaluate_splits"):
        assert f"'{name}'" in out
    import teakit
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        teakit.nope


def test_teakit_explain_stays_the_function_after_its_subpackage_is_imported():
    """``teakit.explain`` is both a subpackage and its function; importing the subpackage (or a module in
    it) after ``import teakit`` sets the package attribute, which must still be the function."""
    out = _run("import inspect, teakit\n"
               "import teakit.explain.lrp\n"
               "from teakit.explain import explain\n"
               "assert inspect.isfunction(teakit.explain) and teakit.explain is explain, teakit.explain\n"
               "import torch\n"
               "from teakit.models import SmallCNN\n"
               "m = SmallCNN(num_classes=3).eval()\n"
               "x = torch.rand(2, 3, 32, 32)\n"
               "print(tuple(teakit.explain(m, x, torch.tensor([0, 1])).shape))\n")
    assert out.strip() == "(2, 3, 32, 32)"
    out = _run("import teakit\n"  # the function first, then the subpackage's module
               "f = teakit.explain\n"
               "import teakit.explain.lrp\n"
               "assert teakit.explain is f and callable(f)\n"
               "print('ok')\n")
    assert out.strip() == "ok"


# ----------------------------------------------------------------- no import cycle


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(tree: ast.AST, module_level: bool = True):
    """Import statements run when the module is imported: not inside a function, nor under
    ``if TYPE_CHECKING:``; with ``module_level`` False, function-local ones too."""
    todo = list(ast.iter_child_nodes(tree))
    while todo:
        node = todo.pop()
        if module_level and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            todo.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        todo.extend(ast.iter_child_nodes(node))


def import_graph(root: Path, package: str, module_level: bool = True) -> dict[str, set[str]]:
    """``{module: modules of ``package`` it imports at module level}`` for every module under
    ``root/package`` (``module_level`` False: in functions too).  ``from P import x`` counts as
    importing ``P.x`` when that is a module, else ``P``; importing ``a.b.c`` also runs the packages
    ``a`` and ``a.b`` (unless they are the importer's own)."""
    files = {module_name(p, root): p for p in sorted((root / package).rglob("*.py"))}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        is_pkg = path.name == "__init__.py"
        targets = set()
        for node in _imports(ast.parse(path.read_text(), str(path)), module_level):
            if isinstance(node, ast.Import):
                targets |= {a.name for a in node.names}
                continue
            if node.level:
                base = name.split(".")
                base = base[:len(base) - node.level + (1 if is_pkg else 0)]
                base = ".".join(base + ([node.module] if node.module else []))
            else:
                base = node.module
            for alias in node.names:
                targets.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in files else base)
        own = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 2)}
        edges = set()
        for t in targets:
            if t.split(".")[0] != package:
                continue
            edges.add(t)
            parts = t.split(".")
            edges |= {".".join(parts[:i]) for i in range(1, len(parts))} - own
        graph[name] = {t for t in edges if t in files and t != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as ``[a, b, ..., a]``, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node):
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"a"}}) == ["a", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_import_graph_sees_module_level_imports_only(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from .leaf import X\n")
    (pkg / "sub" / "leaf.py").write_text("X = 1\n")
    (pkg / "a.py").write_text("import json\nfrom . import b\n")
    (pkg / "b.py").write_text("def f():\n    from .a import g\n")          # function-local: no edge
    (pkg / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import g\n"
                              "from .sub.leaf import X\n")
    graph = import_graph(tmp_path, "pkg")
    assert graph["pkg.a"] == {"pkg.b"} and graph["pkg.b"] == set()
    assert graph["pkg.c"] == {"pkg.sub", "pkg.sub.leaf"} and graph["pkg.sub"] == {"pkg.sub.leaf"}
    assert find_cycle(graph) is None
    (pkg / "b.py").write_text("try:\n    from .a import g\nexcept ImportError:\n    pass\n")
    assert find_cycle(import_graph(tmp_path, "pkg")) == ["pkg.a", "pkg.b", "pkg.a"]
    (pkg / "b.py").write_text("def f():\n    from .a import g\n")
    assert find_cycle(import_graph(tmp_path, "pkg")) is None
    assert find_cycle(import_graph(tmp_path, "pkg", module_level=False)) == ["pkg.a", "pkg.b", "pkg.a"]


def test_no_import_cycle_in_teakit():
    graph = import_graph(SRC, "teakit")
    assert {"teakit.cli", "teakit.data", "teakit.explain.lrp"} <= set(graph)
    cycle = find_cycle(graph)
    assert cycle is None, "module-level import cycle: " + " -> ".join(cycle)


def test_no_import_cycle_in_teakit_even_through_function_local_imports():
    """Imports flow one way (data -> models -> explain -> teachers -> objectives -> train -> evaluate ->
    report -> demo / cli), also where a function imports what it needs when called."""
    cycle = find_cycle(import_graph(SRC, "teakit", module_level=False))
    assert cycle is None, "import cycle (function-local imports included): " + " -> ".join(cycle)
