"""Code as an input: a content hash of the library code a workflow script runs.

Snakemake reruns a job when its script changes, but not when the library the script imports
changes. Each rule therefore passes `params: code=code_hash("<its script>")`: the hash of every
`sinkrepro` module the script can import (followed through imports, function-level ones included),
so editing `src/sinkrepro/stats` reruns the jobs whose scripts reach `stats`, and nothing else.
"""
from __future__ import annotations

import ast
import hashlib
from functools import lru_cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
SCRIPTS = PACKAGE.parents[1] / "workflow" / "scripts"


def _module_file(name: str) -> Path | None:
    """The source file of a `sinkrepro` module (a package's __init__.py); None for anything else."""
    parts = name.split(".")
    if parts[0] != PACKAGE.name:
        return None
    base = PACKAGE.joinpath(*parts[1:])
    for path in (base / "__init__.py", base.with_suffix(".py")):
        if path.is_file():
            return path
    return None


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(path: Path) -> set[str]:
    """Module names `path` imports, with their parent packages (importing a.b.c runs a and a.b)."""
    package = _module_name(path) if path.is_relative_to(PACKAGE) else ""
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}".rstrip(".")
            names |= {base} | {f"{base}.{alias.name}" for alias in node.names}  # `from pkg import module`
    return {".".join(n.split(".")[:i]) for n in names for i in range(1, n.count(".") + 2)}


def library_files(script: str | Path) -> list[Path]:
    """Every `sinkrepro` source file reachable from `script` by imports."""
    todo = [SCRIPTS / script if not Path(script).is_absolute() else Path(script)]
    if not todo[0].is_file():
        raise FileNotFoundError(f"code_hash: no workflow script {todo[0]}; name a file in {SCRIPTS}")
    seen: set[Path] = set()
    while todo:
        for name in _imported(todo.pop()):
            path = _module_file(name)
            if path is not None and path not in seen:
                seen.add(path)
                todo.append(path)
    return sorted(seen)


@lru_cache(maxsize=None)
def code_hash(script: str) -> str:
    """16 hex digits over the paths and bytes of `library_files(script)`."""
    digest = hashlib.sha256()
    for path in library_files(script):
        digest.update(f"{path.relative_to(PACKAGE)}\0".encode() + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]
