"""docs/errors.md, the tree drawn in plinth.errors and the codes used in plinth/ agree."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import plinth.errors
from plinth.errors import PROBLEM_CODES, NotFoundError, PlinthError, leaves
from plinth.errors.__main__ import main
from plinth.errors.catalogue import families, family_tree, leaves_of, render

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "plinth"


def test_docs_errors_md_is_the_generated_catalogue() -> None:
    assert (ROOT / "docs" / "errors.md").read_text(encoding="utf-8") == render(), (
        "docs/errors.md is stale: run python -m plinth.errors > docs/errors.md"
    )


def test_the_check_command_tells_a_stale_file(tmp_path: Path) -> None:
    fresh, stale = tmp_path / "fresh.md", tmp_path / "stale.md"
    fresh.write_text(render(), encoding="utf-8")
    stale.write_text(render().replace("contract.invalid", "contract.oops"), encoding="utf-8")
    assert main(["--check", str(fresh)]) == 0
    assert main(["--check", str(stale)]) == 1


def test_the_module_docstring_draws_the_tree_of_families() -> None:
    drawn = "\n".join("    " + line for line in family_tree().splitlines())
    assert plinth.errors.__doc__ is not None and drawn in plinth.errors.__doc__


def test_every_code_has_one_class_and_every_family_one_prefix() -> None:
    by_code = leaves()
    assert len(by_code) == len(set(by_code.values()))  # one code per class, one class per code
    prefixes: dict[str, type[PlinthError]] = {}
    for family in families():
        if family is NotFoundError or "code" in family.__dict__:
            continue
        own = {leaf.code.split(".")[0] for leaf in leaves_of(family)}
        assert len(own) == 1, f"{family.__name__} mixes prefixes {own}"
        prefix = own.pop()
        assert prefixes.setdefault(prefix, family) is family, f"{prefix}.* has two families"
    for code, leaf in by_code.items():
        assert "." in code and code == code.lower(), code
        assert leaf.__doc__ and (leaf.hint or leaf is PlinthError), f"{leaf.__name__} lacks a doc"
        assert issubclass(leaf, NotFoundError) == code.endswith("not_found"), code
        assert leaf.status_varies or 400 <= leaf.status < 600, code


def _codes_used(path: Path) -> list[tuple[int, str]]:
    """(line, code) for every literal code in a code position, and every constant name
    imported from plinth.errors and used as one (resolved to its value)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    constants: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("plinth.errors"):
            module = importlib.import_module(node.module or "")
            for alias in node.names:
                value = getattr(module, alias.name)
                if isinstance(value, str):
                    constants[alias.asname or alias.name] = value
    positions: list[ast.expr] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = getattr(node.func, "id", getattr(node.func, "attr", ""))
            positions += [k.value for k in node.keywords if k.arg == "code"]
            if name == "Problem" and node.args:
                positions.append(node.args[0])
            if name == "_fail" and len(node.args) > 2:
                positions.append(node.args[2])
        elif isinstance(node, ast.Dict):
            positions += [
                v
                for k, v in zip(node.keys, node.values, strict=True)
                if isinstance(k, ast.Constant) and k.value == "code"
            ]
        elif isinstance(node, ast.Assign) and [getattr(t, "id", "") for t in node.targets] == [
            "code"
        ]:
            positions.append(node.value)
    found = []
    for expr in positions:
        if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
            found.append((expr.lineno, expr.value))
        elif isinstance(expr, ast.Name) and expr.id in constants:
            found.append((expr.lineno, constants[expr.id]))
    return found


def test_every_code_used_in_the_source_is_in_the_catalogue() -> None:
    known = set(leaves()) | set(PROBLEM_CODES)
    used = [
        (f"{path.relative_to(ROOT)}:{line}", code)
        for path in sorted(SOURCE.rglob("*.py"))
        for line, code in _codes_used(path)
    ]
    assert len(used) > 150  # the scan sees the source
    missing = [(where, code) for where, code in used if code not in known]
    assert missing == []


def test_the_scan_finds_a_code_that_is_not_declared(tmp_path: Path) -> None:
    stray = tmp_path / "stray.py"
    stray.write_text(
        "from plinth.errors import Problem\n"
        "from plinth.errors.contract import MISSING_FIELD\n"
        'a = Problem("made.up", "x")\n'
        "b = Problem(MISSING_FIELD, 'y')\n"
        'c = {"code": "also.made_up"}\n',
        encoding="utf-8",
    )
    assert _codes_used(stray) == [
        (3, "made.up"),
        (4, "contract.missing_field"),
        (5, "also.made_up"),
    ]
