"""The layer seams hold (docs/DESIGN.md, "Layers"): tirl's own imports form no cycle, algo/ does
not reach up into rollout/train/engine, config/ imports nothing of the layers that read it,
protocol/ nothing of rewards/; and ``import tirl.config`` loads no torch, engine or sandbox.

The graph is built statically with ``ast`` from every ``tirl/**/*.py``:
- an edge is ``import a.b`` or ``from a import b`` of a tirl module (``from pkg import name``
  points at ``pkg.name`` when that is a module, else at ``pkg``; relative imports are resolved);
- importing ``a.b.c`` also runs the ``__init__`` of ``a`` and ``a.b``; those implicit edges are
  left out, so a package that re-exports its modules does not put every sibling in one cycle;
- each edge is marked *module-level* (runs when the module is imported: the module body, class
  bodies, top-level ``if``/``try``/``with``) or *deferred* (inside a function, or under
  ``if TYPE_CHECKING:``).

Every check counts deferred edges too. Counting module-level edges only would find no cycle at
all (a deferred import never fails at import time), yet a deferred import that closes a loop is
still a two-way dependency between two files (engine/factory.py <-> engine/vllm_engine.py was
one, through a TYPE_CHECKING import and a function-level one). Cycles are checked between
modules and between tirl's sub-packages (``tirl.protocol`` <-> ``tirl.rewards`` was a package
cycle without being a module cycle). Deferred imports stay the way to load something heavy
late; they just must not point back up.
"""

from __future__ import annotations

import ast
import functools
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "tirl"

# Known exceptions: edges that break a rule until their redesign lands. Each must still exist
# (test_known_exceptions_still_exist), so the list shrinks as they are removed. None today.
KNOWN_CYCLE_EDGES: set[tuple[str, str]] = set()
KNOWN_LAYER_EDGES: set[tuple[str, str]] = set()


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PKG.rglob("*.py")}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.Module):
    """(node, deferred) for every import statement."""
    out = []

    def visit(node: ast.AST, deferred: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                out.append((child, deferred))
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                visit(child, True)
            elif isinstance(child, ast.If) and _is_type_checking(child.test):
                for stmt in child.body:
                    visit(ast.Module(body=[stmt], type_ignores=[]), True)
                for stmt in child.orelse:
                    visit(ast.Module(body=[stmt], type_ignores=[]), deferred)
            else:
                visit(child, deferred)

    visit(tree, False)
    return out


def _targets(node: ast.Import | ast.ImportFrom, module: str, is_pkg: bool, known: set[str]) -> list[str]:
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
        return [_closest(n, known) for n in names if n.split(".")[0] == "tirl"]
    if node.level:
        base = module.split(".") if is_pkg else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        src = ".".join(base + ([node.module] if node.module else []))
    else:
        src = node.module or ""
    if src.split(".")[0] != "tirl":
        return []
    out = []
    for a in node.names:
        sub = f"{src}.{a.name}"
        out.append(sub if sub in known else _closest(src, known))
    return out


def _closest(name: str, known: set[str]) -> str:
    while name not in known and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


@functools.cache
def import_graph() -> dict[str, dict[str, bool]]:
    """module -> {imported tirl module: deferred (True only if every import of it is deferred)}."""
    mods = _modules()
    known = set(mods)
    graph: dict[str, dict[str, bool]] = {}
    for name, path in mods.items():
        edges: dict[str, bool] = {}
        for node, deferred in _imports(ast.parse(path.read_text(), str(path))):
            for t in _targets(node, name, path.name == "__init__.py", known):
                if t != name:
                    edges[t] = edges.get(t, True) and deferred
        graph[name] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in graph:
                    continue
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
    return out


def _under(module: str, *packages: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def test_graph_sees_the_imports():
    g = import_graph()
    assert "tirl.config.root" in g["tirl.config.load"]
    assert "tirl.protocol.answer" in g["tirl.rewards.outcome"]
    assert g["tirl.engine.factory"].get("tirl.engine.vllm_engine") is True  # imported in build_engine only
    assert "tirl.tools.python_sandbox.config" in g["tirl.tools.python_sandbox"]  # relative import resolved


def _package(module: str) -> str:
    return ".".join(module.split(".")[:2])  # tirl.rollout.arpo -> tirl.rollout; tirl.types stays


def test_no_import_cycles_between_modules():
    g = import_graph()
    edges = {m: {t for t in ts if (m, t) not in KNOWN_CYCLE_EDGES} for m, ts in g.items()}
    assert cycles(edges) == []


def test_no_import_cycles_between_packages():
    packages: dict[str, set[str]] = {}
    for m, ts in import_graph().items():
        packages.setdefault(_package(m), set()).update(_package(t) for t in ts if _package(t) != _package(m))
    assert cycles(packages) == []


def test_known_exceptions_still_exist():
    # when a redesign removes one, delete it from the lists above
    g = import_graph()
    for a, b in KNOWN_CYCLE_EDGES | KNOWN_LAYER_EDGES:
        assert b in g[a], f"{a} -> {b} is gone: remove it from the known exceptions"


def _violations(rule_from: tuple[str, ...], forbidden, allowed_edges=frozenset()) -> list[str]:
    g = import_graph()
    return sorted(f"{m} -> {t}" for m, edges in g.items() if _under(m, *rule_from) for t in edges if forbidden(t) and (m, t) not in allowed_edges)


def test_algo_sees_only_itself_and_the_core_types():
    # pure math on tensors and typed trees (tirl.types), not even type hints from other layers
    assert _violations(("tirl.algo",), lambda t: not _under(t, "tirl.algo", "tirl.types"), KNOWN_LAYER_EDGES) == []


def test_config_imports_only_itself():
    # config/ sees nothing of tirl but its own sections and the UserError base
    assert _violations(("tirl.config",), lambda t: not _under(t, "tirl.config", "tirl.errors")) == []


def test_protocol_sees_no_rewards():
    assert _violations(("tirl.protocol",), lambda t: _under(t, "tirl.rewards")) == []


def test_import_tirl_config_is_light():
    heavy = ("torch", "transformers", "httpx", "numpy", "vllm", "tirl.engine", "tirl.rollout", "tirl.tools", "tirl.train")
    code = f"import sys, tirl.config; print(sorted(m for m in sys.modules if m.startswith({heavy!r})))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
