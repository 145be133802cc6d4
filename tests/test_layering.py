"""The architecture, enforced: which layer may import which, and the habits that keep layers apart.

ARCHITECTURE.md draws the layers; this test reads every module of src/cpuwise with `ast` (nothing is
imported) and fails with the file, line and the rule broken.
"""

from __future__ import annotations

import ast
import io
import tokenize
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "cpuwise"

# The leaves import nothing of cpuwise but each other (errors at the very bottom).
LEAVES = {"errors", "_optional", "host", "_channel", "_schema", "_steps", "_scaleout", "_trials"}
# What each top-level part of cpuwise may import (besides itself). A lower layer never imports a
# higher one: collectors (monitor), the pipeline (data) and the optimizer (optimize) know nothing of
# the doctor's rules (diagnose), its renderers (report) or the command line (cli).
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "_optional": {"errors"},
    "host": {"errors"},
    "_channel": set(),
    "_schema": {"errors"},
    "_steps": {"_schema", "_channel"},
    "_scaleout": {"_schema", "errors"},
    "_trials": set(),
    "monitor": LEAVES,
    "data": LEAVES,
    "optimize": LEAVES,
    "zoo": LEAVES,
    "diagnose": LEAVES,
    "report": LEAVES | {"diagnose"},
    "envinfo": LEAVES | {"monitor"},
    "_watch": LEAVES | {"monitor", "diagnose", "report"},
    # the bootstrap hands a --try-fixes trial cpuwise.data's DataLoader drop-in (imported only there)
    "_boot": LEAVES | {"monitor", "integrations", "data"},
    "integrations": LEAVES | {"monitor"},
    "testing": LEAVES | {"monitor", "data", "optimize", "diagnose", "report", "zoo"},
    "demo": LEAVES | {"monitor", "data", "diagnose", "report", "_watch", "zoo"},
    "cli": LEAVES | {"monitor", "data", "optimize", "diagnose", "report", "_watch", "envinfo", "demo", "zoo"},
    "__init__": {"errors", "_watch"},
    "__main__": {"cli"},
}

# Reads of another object's `_private` attribute that are not cpuwise's own: third-party and
# standard-library internals with no public equivalent. (file relative to src/cpuwise, expression).
FOREIGN_PRIVATE = {
    # multiprocessing's Popen needs the process name to build the preparation data; see _Popen.
    ("data/_engine/processes.py", "process_obj._name"),
    # torch's DataLoader iterator and worker loop are patched to time steps and report each worker's
    # role and thread pools (torch has no public hook for either).
    ("monitor/instrument/torch_patches.py", "dl._BaseDataLoaderIter"),
    ("monitor/instrument/torch_patches.py", "base._reset"),
    ("monitor/instrument/torch_patches.py", "worker_mod._worker_loop"),
    # torch.multiprocessing.spawn catches a rank's exception in `_wrap` (no hook): wrapped to report it.
    ("monitor/instrument/torch_patches.py", "spawn_mod._wrap"),
}

# The doctor's bootstrap runs as the top-level `sitecustomize` of the job's interpreter, which may
# not have cpuwise installed: it is the one place that must try an import of cpuwise and carry on.
BOOTSTRAP = "_boot/sitecustomize.py"


@dataclass(frozen=True)
class Module:
    rel: str  # path relative to src/cpuwise
    part: str  # top-level part: "data", "monitor", "host", ...
    tree: ast.Module
    lines: list[str]
    comments: dict[int, str]  # line -> comment text


def _comments(source: str) -> dict[int, str]:
    out: dict[int, str] = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            out[tok.start[0]] = tok.string
    return out


def _modules() -> list[Module]:
    mods = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        part = rel.split("/")[0].removesuffix(".py")
        text = path.read_text()
        mods.append(Module(rel, part, ast.parse(text), text.splitlines(), _comments(text)))
    return mods


MODULES = _modules()


def _own_imports(mod: Module) -> list[tuple[int, str]]:
    """(line, imported cpuwise module) for every import of cpuwise in `mod`, wherever it is."""
    out = []
    for node in ast.walk(mod.tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "cpuwise"]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "cpuwise":
                out += [(node.lineno, f"cpuwise.{a.name}") for a in node.names]
            elif node.module.startswith("cpuwise."):
                out.append((node.lineno, node.module))
    return out


def test_every_part_of_the_package_has_a_layer() -> None:
    parts = {m.part for m in MODULES}
    assert parts <= set(ALLOWED), f"give these a row in ALLOWED (and ARCHITECTURE.md): {parts - set(ALLOWED)}"


@pytest.mark.parametrize("mod", MODULES, ids=lambda m: m.rel)
def test_lower_layers_never_import_higher_ones(mod: Module) -> None:
    bad = []
    for line, name in _own_imports(mod):
        target = (name.split(".") + ["__init__"])[1]
        if target != mod.part and target not in ALLOWED[mod.part]:
            bad.append(f"{mod.rel}:{line} imports {name}: '{mod.part}' may import only "
                       f"{sorted(ALLOWED[mod.part]) or 'nothing of cpuwise'}")
    assert not bad, "\n".join(bad)


def _catches_import_error(handler: ast.ExceptHandler) -> bool:
    names = []
    for node in ast.walk(handler.type) if handler.type is not None else []:
        if isinstance(node, ast.Name):
            names.append(node.id)
    return handler.type is None or bool({"ImportError", "ModuleNotFoundError", "Exception"} & set(names))


@pytest.mark.parametrize("mod", MODULES, ids=lambda m: m.rel)
def test_no_import_of_cpuwise_is_guarded_by_except_import_error(mod: Module) -> None:
    if mod.rel == BOOTSTRAP:
        return
    bad = []
    for node in ast.walk(mod.tree):
        if not isinstance(node, ast.Try) or not any(_catches_import_error(h) for h in node.handlers):
            continue
        body = ast.Module(body=node.body, type_ignores=[])
        for line, name in _own_imports(Module(mod.rel, mod.part, body, [], {})):
            bad.append(f"{mod.rel}:{line} imports {name} inside try/except ImportError: cpuwise's own "
                       "modules are always there; import it plainly")
    assert not bad, "\n".join(bad)


def _defined_privates(tree: ast.AST) -> set[str]:
    """`_names` this module defines: attributes it assigns on any object, class/function/module names."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
    return names


@pytest.mark.parametrize("mod", MODULES, ids=lambda m: m.rel)
def test_no_reads_of_private_fields_defined_in_another_module(mod: Module) -> None:
    own = _defined_privates(mod.tree)
    bad = []
    for node in ast.walk(mod.tree):
        if not isinstance(node, ast.Attribute) or not node.attr.startswith("_") or node.attr.startswith("__"):
            continue
        if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
            continue
        if node.attr in own:
            continue  # the class (or object) is this module's own
        expr = ast.unparse(node)
        if (mod.rel, expr) in FOREIGN_PRIVATE:
            continue
        bad.append(f"{mod.rel}:{node.lineno} reads {expr}: a private of another module; give that module "
                   "a public method or attribute for it")
    assert not bad, "\n".join(bad)


def _import_blocks(fn: ast.AST) -> list[ast.stmt]:
    """The first import of each run of consecutive import statements inside a function."""
    firsts: list[ast.stmt] = []
    for node in ast.walk(fn):
        body = getattr(node, "body", None)
        for seq in (body, getattr(node, "orelse", None), getattr(node, "finalbody", None)):
            if not isinstance(seq, list):
                continue
            prev_import = False
            for stmt in seq:
                is_import = isinstance(stmt, (ast.Import, ast.ImportFrom))
                if is_import and not prev_import:
                    firsts.append(stmt)
                prev_import = is_import
    return firsts


@pytest.mark.parametrize("mod", MODULES, ids=lambda m: m.rel)
def test_every_function_level_import_says_why(mod: Module) -> None:
    bad = []
    seen: set[int] = set()
    for fn in ast.walk(mod.tree):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for stmt in _import_blocks(fn):
            if stmt.lineno in seen:
                continue
            seen.add(stmt.lineno)
            end = stmt.end_lineno or stmt.lineno
            around = [mod.comments.get(n, "") for n in range(stmt.lineno - 1, end + 1)]
            if not any(c.strip("# ").strip() for c in around):
                bad.append(f"{mod.rel}:{stmt.lineno} `{mod.lines[stmt.lineno - 1].strip()}` is imported "
                           "inside a function without a comment saying why it is lazy (on the line above "
                           "or at its end)")
    assert not bad, "\n".join(bad)
