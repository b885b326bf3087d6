#!/usr/bin/env python3
"""Lists the pairs of files under src/ that import each other, and fails when there is one.

A file "imports" another when it names an item through a path into it (`crate::a::b::item`,
`super::b::item`, `self::b::item`, in a `use` or inline). A module's root (`mod.rs`) and its
own children are one unit and may name each other; two siblings, or two files of different
modules, may not: one of them must sit below the other (docs/ARCHITECTURE.md's layers).
Run by `make lint`.
"""
import re
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
PATH = re.compile(r"\b(crate|super|self)((?:::[A-Za-z_][A-Za-z0-9_]*)+)")
BRACES = re.compile(r"\b(crate|super|self)((?:::[A-Za-z_][A-Za-z0-9_]*)*)::\{([^{}]*)\}")


def module_of(path: Path) -> tuple:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    return tuple(parts)


def is_root(path: Path) -> bool:
    return path.name in ("mod.rs", "lib.rs", "main.rs")


def file_of(module: tuple, files: dict) -> tuple | None:
    """The longest prefix of `module` that is a file's module."""
    for n in range(len(module), -1, -1):
        if module[:n] in files:
            return module[:n]
    return None


def absolute(kind: str, rest: list, here: tuple, root: bool) -> tuple:
    # `super` in a file is its parent module; in a mod.rs, the module's own parent.
    base = {"crate": (), "self": here, "super": here[:-1]}[kind]
    while rest and rest[0] == "super":
        base, rest = base[:-1], rest[1:]
    return base + tuple(rest)


def imports(path: Path, files: dict) -> set:
    here = module_of(path)
    text = re.sub(r"//.*", "", path.read_text())
    found = set()
    paths = [(m.group(1), m.group(2)) for m in PATH.finditer(text)]
    for m in BRACES.finditer(text):
        for item in m.group(3).split(","):
            item = item.strip().split(" as ")[0]
            if item and item != "self":
                paths.append((m.group(1), m.group(2) + "::" + item))
    for kind, rest in paths:
        target = file_of(absolute(kind, [p for p in rest.split("::") if p], here, is_root(path)), files)
        if target is not None and target != here:
            found.add(target)
    return found


def main() -> int:
    files = {module_of(p): p for p in SRC.rglob("*.rs")}
    graph = {m: imports(p, files) for m, p in files.items()}
    pairs = []
    for a, targets in graph.items():
        for b in targets:
            if a < b and a in graph.get(b, ()):
                # A module's root and its own children are one unit.
                parent_child = (b[:-1] == a and is_root(files[a])) or (a[:-1] == b and is_root(files[b]))
                if not parent_child:
                    pairs.append((files[a].relative_to(SRC.parent), files[b].relative_to(SRC.parent)))
    for a, b in sorted(pairs):
        print(f"{a} <-> {b}")
    if pairs:
        print(f"{len(pairs)} pairs of files under src/ import each other", file=sys.stderr)
        return 1
    print(f"no two files under src/ import each other ({len(files)} files)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
