#!/usr/bin/env python3
"""Fails when the top-level modules of any workspace crate import each other in a circle.

A module is a crate's `src/NAME.rs` or `src/NAME/` folder. An edge A -> B is any `crate::B`
path written in A (in `use` lines or inline), `super::` paths from A's own files stay inside A.
Tests (`#[cfg(test)] mod tests` blocks at the end of a file) are left out: they may reach
anywhere. Prints each cycle as a list of modules and exits 1 if there is one.
"""

import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
CRATE_PATH = re.compile(r"\bcrate::([a-z_][a-z0-9_]*)")
USE_GROUP = re.compile(r"\bcrate::\{([^}]*)\}")


def module_of(src: pathlib.Path, file: pathlib.Path):
    rel = file.relative_to(src)
    if rel.parts[0] in ("lib.rs", "main.rs"):
        return None
    return rel.parts[0].removesuffix(".rs")


def without_tests(text: str) -> str:
    marker = text.find("#[cfg(test)]\nmod tests")
    return text if marker < 0 else text[:marker]


def without_comments(text: str) -> str:
    return "\n".join(line.split("//", 1)[0] for line in text.splitlines())


def edges_of(src: pathlib.Path):
    edges = {}
    for file in sorted(src.rglob("*.rs")):
        module = module_of(src, file)
        if module is None:
            continue
        text = without_comments(without_tests(file.read_text()))
        targets = set(CRATE_PATH.findall(text))
        for group in USE_GROUP.findall(text):
            targets.update(name.strip().split("::")[0] for name in group.split(",") if name.strip())
        edges.setdefault(module, set()).update(t for t in targets if t != module and t != "self")
    return edges


def cycles(edges):
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []
    counter = [0]

    def visit(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in edges:
                continue
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def main():
    failed = False
    for src in sorted(ROOT.glob("crates/*/src")) + sorted(ROOT.glob("examples/*/src")):
        for component in cycles(edges_of(src)):
            failed = True
            print(f"{src.parent.name}: import cycle among {', '.join(component)}")
            edges = edges_of(src)
            for module in component:
                inside = sorted(t for t in edges[module] if t in component)
                print(f"  {module} -> {', '.join(inside)}")
    if not failed:
        print("no import cycles among the modules of any crate")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
