"""Compile every plugin file and import every module and module_utils file, as a deploy host would.

Run by scripts/sanity.sh with the oldest supported deploy-host Python (3.9, a Debian 11 image)
and with nothing on the path but the standard library, ansible-core's `module_utils` (what
Ansible ships to the host inside a module's payload) and the collection itself:

    python3 deploy_host_import_check.py COLLECTIONS_DIR ANSIBLE_PARENT_DIR

COLLECTIONS_DIR holds `ansible_collections/stagegate/release`; ANSIBLE_PARENT_DIR holds an
`ansible/module_utils` tree. Action, callback and filter plugins run on the controller (Python
3.11+ with ansible-core 2.19), so they are compiled only. Exit 1 naming each file that fails.
"""

import ast
import importlib
import sys
import traceback
from pathlib import Path


def newer_calls(tree: ast.AST) -> list[str]:
    """Calls that compile on 3.9 but fail when they run: `isinstance(x, A | B)`, `zip(strict=)`."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
            continue
        name = node.func.id
        union = len(node.args) == 2 and isinstance(node.args[1], ast.BinOp)
        if (
            name in ("isinstance", "issubclass")
            and union
            and isinstance(node.args[1].op, ast.BitOr)
        ):
            found.append(f"{node.lineno}: {name}() with an `X | Y` type needs Python 3.10")
        if name == "zip" and any(k.arg == "strict" for k in node.keywords):
            found.append(f"{node.lineno}: zip(strict=) needs Python 3.10")
    return found


def main() -> int:
    collections_dir, ansible_parent = Path(sys.argv[1]), Path(sys.argv[2])
    root = collections_dir / "ansible_collections" / "stagegate" / "release"
    sys.path[:0] = [str(collections_dir), str(ansible_parent)]
    failures = []
    compiled = imported = 0
    for path in sorted((root / "plugins").rglob("*.py")):
        try:
            tree = compile(
                path.read_bytes(), str(path), "exec", ast.PyCF_ONLY_AST, dont_inherit=True
            )
            compile(tree, str(path), "exec", dont_inherit=True)
            compiled += 1
        except SyntaxError as exc:
            failures.append(f"{path.relative_to(root)}:{exc.lineno}: does not compile: {exc.msg}")
            continue
        failures.extend(f"{path.relative_to(root)}:{line}" for line in newer_calls(tree))
        kind = path.parent.name
        if kind not in ("modules", "module_utils"):
            continue
        name = ".".join(("ansible_collections.stagegate.release.plugins", kind, path.stem))
        try:
            importlib.import_module(name)
            imported += 1
        except Exception:  # every failure is reported with its traceback
            failures.append(f"{path.relative_to(root)}: import failed:\n{traceback.format_exc()}")
    version = ".".join(str(part) for part in sys.version_info[:3])
    for failure in failures:
        print(f"Python {version}: {failure}")
    print(
        f"Python {version}: {compiled} plugin files compiled, {imported} modules imported, "
        f"{len(failures)} failed"
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
