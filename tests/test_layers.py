"""The package's layers, kept by walking every module's imports.

The sans-IO core (``protocol/``) imports nothing of the package but the error classes; each
layer imports only from the layers below it; the two drivers never import each other.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import pytest

PACKAGE_DIR = Path(__file__).resolve().parent.parent / "pgwire_pubsub"

# Top-level part of the package -> its layer: a module may import from its own layer's part
# and from any lower layer, never from a higher one or from a sibling part of its layer.
LAYERS: Dict[str, int] = {
    "errors": 0,
    "protocol": 1,
    "conninfo": 2,
    "tls": 2,
    "_shared": 3,
    "_blocking": 4,
    "aio": 4,
    "triggers": 6,
    "localserver": 6,
    "_serverprograms": 5,
    "__init__": 7,
    "testing": 8,
    "cli": 8,
    "__main__": 9,
}
# What the core may import besides itself: the error classes, and nothing else.
CORE_ALLOWED = {"errors"}


def part_of(module: str) -> str:
    """``pgwire_pubsub.protocol.machine`` -> ``protocol``; the package itself -> ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def module_name(path: Path, root: Path = PACKAGE_DIR) -> str:
    rel = path.relative_to(root.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, root: Path = PACKAGE_DIR) -> Iterator[str]:
    """Every module of the package that ``path`` imports (relative imports resolved);
    an import inside ``if TYPE_CHECKING:`` counts too."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name.startswith("pgwire_pubsub"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            elif node.module and node.module.startswith("pgwire_pubsub"):
                target = node.module
            else:
                continue
            if target == "pgwire_pubsub":  # from pgwire_pubsub import x: x may be a part
                for alias in node.names:
                    sub = f"pgwire_pubsub.{alias.name}"
                    yield sub if part_of(sub) in LAYERS else target
            else:
                yield target


def all_modules(root: Path = PACKAGE_DIR) -> List[Path]:
    return sorted(root.rglob("*.py"))


def violations(root: Path = PACKAGE_DIR) -> List[Tuple[str, str]]:
    found = []
    for path in all_modules(root):
        here = part_of(module_name(path, root))
        for target in imports_of(path, root):
            there = part_of(target)
            if there == here:
                continue
            if (here == "protocol" and there not in CORE_ALLOWED) or LAYERS[there] >= LAYERS[here]:
                found.append((module_name(path, root), target))
    return found


def test_every_part_has_a_layer() -> None:
    parts = {part_of(module_name(path)) for path in all_modules()}
    assert parts <= set(LAYERS), f"parts with no layer: {parts - set(LAYERS)}"


def test_the_core_imports_only_the_error_classes() -> None:
    core = [p for p in all_modules() if part_of(module_name(p)) == "protocol"]
    assert core
    outside = sorted({(module_name(p), t) for p in core for t in imports_of(p)
                      if part_of(t) not in ("protocol", *CORE_ALLOWED)})
    assert not outside, f"the core imports from above it: {outside}"


def test_each_layer_imports_only_from_below() -> None:
    assert not violations()


@pytest.mark.parametrize("where, line", [
    ("protocol/machine.py", "from .._shared import channels"),
    ("protocol/machine.py", "from pgwire_pubsub.conninfo import make_params"),
    ("_blocking/connection.py", "from ..aio import connect"),
    ("tls/__init__.py", "from .._shared.reconnect import ReconnectPolicy"),
    ("_shared/opening.py", "from pgwire_pubsub._blocking import pubsub"),
])
def test_a_forbidden_import_is_found(where: str, line: str, tmp_path: Path) -> None:
    root = tmp_path / "pgwire_pubsub"
    path = root / where
    path.parent.mkdir(parents=True)
    path.write_text(f"{line}\n", encoding="utf-8")
    assert violations(root)


def test_an_allowed_import_is_not_found(tmp_path: Path) -> None:
    root = tmp_path / "pgwire_pubsub"
    (root / "protocol").mkdir(parents=True)
    (root / "protocol" / "machine.py").write_text(
        "from ..errors import Error\nfrom . import messages\n", encoding="utf-8")
    assert not violations(root)
