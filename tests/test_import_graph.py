"""No import cycle anywhere in ``src/facematch`` (issue 11).

`make lint`'s ``acyclic_siblings`` contract forbids cycles between the children of
each package; this test looks at every module, package ``__init__`` modules
included, through grimp (the graph library import-linter runs on), and names each
cycle it finds module by module.
"""

from __future__ import annotations

import grimp


def _graph() -> grimp.ImportGraph:
    return grimp.build_graph("facematch", cache_dir=None)


def _components(graph: grimp.ImportGraph) -> list[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[frozenset[str]] = []
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            module, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    imported = sorted(graph.find_modules_directly_imported_by(child))
                    work.append((child, iter(imported)))
                elif child in on_stack:
                    low[module] = min(low[module], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[module])
            if low[module] == index[module]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == module:
                        break
                if len(component) > 1:
                    found.append(frozenset(component))
    return found


def _one_cycle(graph: grimp.ImportGraph, component: frozenset[str]) -> str:
    """A concrete cycle through the component, as ``a -> b -> ... -> a``."""
    start = min(component)
    step = min(m for m in graph.find_modules_directly_imported_by(start) if m in component)
    back = graph.find_shortest_chain(importer=step, imported=start) or ()
    return " -> ".join((start, *back))


def test_no_import_cycles() -> None:
    graph = _graph()
    cycles = _components(graph)
    assert not cycles, "import cycles in src/facematch:\n" + "\n".join(
        _one_cycle(graph, c) for c in cycles
    )
