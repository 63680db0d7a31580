"""The package layering: asc_core at the bottom, TensorFlow-free builders, no import cycles.

``asc_core`` (vocabulary, errors, audio, example encoders, TFRecord framing and writing, the
build output folder, the microphone table, atomic files, downloads) is shared by
``tfrecords_builder`` and ``keras_asc``, and neither of those imports the other: the builders
never import ``keras_asc`` (so their worker processes never load TensorFlow), ``keras_asc`` never
imports the builders (the ``keras-asc build`` console command names their module by string), and
the packages form no cycle. Imports are read from the source (every ``import`` statement, those
inside functions included), so a function-local import cannot hide a cycle.
"""

import ast
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("asc_core", "tfrecords_builder", "keras_asc")


def _modules(package):
    """``{dotted module name: path}`` of every ``.py`` file of ``package``."""
    found = {}
    root = os.path.join(REPO, package)
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(names):
            if not name.endswith(".py"):
                continue
            path = os.path.join(folder, name)
            parts = os.path.relpath(path, REPO)[: -len(".py")].split(os.sep)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def _imported(module, path, known):
    """The project modules ``module`` (at ``path``) imports, anywhere in the file."""
    is_package = path.endswith("__init__.py")
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            names.add(target)
            # ``from package import submodule`` imports the submodule
            names.update(f"{target}.{alias.name}" for alias in node.names)
    return {name for name in names if name in known}


def _node(module):
    """The graph node of a module: asc_core, tfrecords_builder, keras_asc.<child> or keras_asc."""
    parts = module.split(".")
    if parts[0] == "keras_asc" and len(parts) > 1:
        return f"keras_asc.{parts[1]}"
    return parts[0]


def package_graph():
    """``{node: {node: [(module, imported module), ...]}}`` between the nodes of ``_node``."""
    modules = {}
    for package in PACKAGES:
        modules.update(_modules(package))
    graph = {}
    for module, path in modules.items():
        source = _node(module)
        graph.setdefault(source, {})
        for target in sorted(_imported(module, path, modules)):
            if _node(target) != source:
                graph[source].setdefault(_node(target), []).append((module, target))
    return graph


def find_cycle(graph):
    """One cycle of ``graph`` as a list of nodes (first == last), or None."""
    state = {}  # node -> 1 on the current path, 2 done
    path = []

    def visit(node):
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def _describe(graph, cycle):
    steps = []
    for a, b in zip(cycle, cycle[1:]):
        module, target = graph[a][b][0]
        steps.append(f"  {a} -> {b} ({module} imports {target})")
    return "import cycle between packages:\n" + "\n".join(steps)


@pytest.fixture(scope="module")
def graph():
    return package_graph()


def test_asc_core_imports_neither_keras_asc_nor_the_builders(graph):
    wrong = {
        target: edges
        for target, edges in graph["asc_core"].items()
        if target.startswith(("keras_asc", "tfrecords_builder"))
    }
    assert not wrong, f"asc_core must stay at the bottom; it imports {wrong}"


def test_builders_import_no_keras_asc(graph):
    wrong = {t: e for t, e in graph["tfrecords_builder"].items() if t.startswith("keras_asc")}
    assert not wrong, f"tfrecords_builder must not import keras_asc; it imports {wrong}"


def test_keras_asc_imports_no_builders(graph):
    wrong = {
        (source, target): edges
        for source, targets in graph.items()
        if source.startswith("keras_asc")
        for target, edges in targets.items()
        if target.startswith("tfrecords_builder")
    }
    assert not wrong, f"keras_asc must not import tfrecords_builder; it imports {wrong}"


def test_package_graph_has_no_cycle(graph):
    cycle = find_cycle(graph)
    assert cycle is None, _describe(graph, cycle)


def test_cycle_finder_reports_the_cycle():
    # The finder itself: a graph with a three-package cycle and one without.
    edges = [("m", "t")]
    cyclic = {"a": {"b": edges}, "b": {"c": edges}, "c": {"a": edges}, "d": {"a": edges}}
    assert find_cycle(cyclic) == ["a", "b", "c", "a"]
    assert "a -> b (m imports t)" in _describe(cyclic, find_cycle(cyclic))
    assert find_cycle({"a": {"b": edges}, "b": {}, "c": {"a": edges}}) is None


def test_builders_and_asc_core_load_no_tensorflow():
    modules = sorted(m for p in ("asc_core", "tfrecords_builder") for m in _modules(p))
    script = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(sorted(m for m in ('tensorflow', 'keras', 'keras_asc') if m in sys.modules))\n"
    )
    env = {**os.environ, "PYTHONPATH": REPO}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=REPO
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]", f"loaded by {len(modules)} modules: {result.stdout}"
