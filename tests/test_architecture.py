"""Layering checks over the source of xtreme_jax/ (parsed with ast, nothing imported): no import
cycle between its modules nor those of the programs on top (benchmarks/, tools/), counting
imports inside functions too (a function-local import must not hide one), and no module of
either over MAX_LINES."""
import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "xtreme_jax"
PROGRAMS = (ROOT / "benchmarks", ROOT / "tools")
MAX_LINES = 500


def modules(package=PACKAGE) -> dict:
    out = {}
    for path in package.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def import_graph(mods: dict) -> dict:
    """{module: {modules of `mods` it imports}}. `from pkg import name` depends on pkg.name when
    that is a module, else on pkg (importing a submodule is not a dependency on its package)."""
    def owner(name):
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name

    tops = {m.split(".")[0] for m in mods}
    graph = {}
    for mod, path in mods.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in mods else node.module
                           for a in node.names]
            else:
                continue
            deps |= {owner(t) for t in targets if t.split(".")[0] in tops}
        graph[mod] = deps - {mod, ""}
    return graph


def cycles(graph: dict) -> list:
    """Strongly connected groups of more than one module (Tarjan), each sorted."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def all_modules() -> dict:
    return {m: p for package in (PACKAGE, *PROGRAMS) for m, p in modules(package).items()}


def test_no_import_cycles():
    found = cycles(import_graph(all_modules()))
    assert not found, "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


def test_cycle_finder_finds_a_hidden_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_over_the_size_limit():
    every = all_modules()
    assert "benchmarks.bench" in every and "tools.convert_e5" in every
    big = {m: n for m, p in every.items()
           if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not big, f"modules over {MAX_LINES} lines: {big}"
