"""The package's architecture, read from its source: floors from bottom to top, no import cycle,
no import that points to a higher floor, no loose module at the package root, every registered
model keeps the model contract, and every name README.md and docs/*.md import still imports.

Every import counts, function-level ones included (the source is parsed, nothing is imported
for the graph)."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest
from conftest import ROOT

PACKAGE = "recbole_sasrec_ext"
PACKAGE_DIR = ROOT / PACKAGE

#: The floors, bottom first: (name, the packages (or modules) on it). A module may import from
#: its own floor and the floors below, never from a floor above. docs/architecture.md lists them.
FLOORS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("common", ("common",)),
    ("contract", ("contract",)),
    ("layers", ("layers",)),
    ("data", ("data", "evaluation")),
    ("models", ("models",)),
    ("parallel", ("parallel",)),
    ("config", ("config",)),
    ("training", ("training",)),
    ("compat", ("compat",)),
    ("package", ("",)),  # the package's __init__: applies compat, exports the public names
    ("apps", ("apps", "serving", "convert", "__main__")),
    ("benchmark", ("benchmark",)),
)


def _module_files() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package."""
    modules = {}
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The package module that ``name`` (a module or a name inside one) refers to."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports (anywhere in its source)."""
    modules = _module_files()
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        is_package = path.name == "__init__.py"
        targets: set[str | None] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets |= {_resolve(a.name, modules) for a in node.names
                            if a.name.split(".")[0] == PACKAGE}
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = module.split(".") if is_package else module.split(".")[:-1]
                    base = base[: len(base) - node.level + 1]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                if source.split(".")[0] != PACKAGE:
                    continue
                for alias in node.names:  # ``from pkg import module`` imports the module
                    full = f"{source}.{alias.name}"
                    targets.add(full if full in modules else _resolve(source, modules))
        graph[module] = {t for t in targets if t is not None and t != module}
    return graph


def floor_of(module: str) -> int:
    """Index in :data:`FLOORS` of the floor ``module`` is on (the longest matching entry)."""
    relative = module[len(PACKAGE) + 1:] if module != PACKAGE else ""
    best, best_len = None, -1
    for index, (_, entries) in enumerate(FLOORS):
        for entry in entries:
            matches = relative == entry or relative.startswith(entry + ".") or (
                entry == "" and relative == "")
            if matches and len(entry) > best_len:
                best, best_len = index, len(entry)
    if best is None:
        raise AssertionError(f"{module} is on no floor: add its package to FLOORS")
    return best


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles():
    assert _cycles(import_graph()) == []


def test_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_every_module_is_on_one_floor_and_imports_only_downwards():
    graph = import_graph()
    upward = [
        f"{module} ({FLOORS[floor_of(module)][0]}) -> {target} ({FLOORS[floor_of(target)][0]})"
        for module, targets in sorted(graph.items())
        for target in sorted(targets)
        if floor_of(target) > floor_of(module)
    ]
    assert upward == []


def test_no_loose_modules_at_the_package_root():
    loose = sorted(p.name for p in PACKAGE_DIR.glob("*.py"))
    assert loose == ["__init__.py", "__main__.py"]


def test_every_package_is_on_a_floor_and_in_the_architecture_doc():
    packages = sorted(p.parent.name for p in PACKAGE_DIR.glob("*/__init__.py"))
    on_floors = {entry for _, entries in FLOORS for entry in entries}
    assert set(packages) <= on_floors
    doc = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    for _, entries in FLOORS:
        for entry in entries:
            if entry in packages:
                assert f"`{entry}/`" in doc, f"docs/architecture.md does not list {entry}/"
    floors_in_doc = re.findall(r"^\|\s*(\d+)\s*\|\s*([a-z]+)\s*\|", doc, re.M)
    assert [name for _, name in floors_in_doc] == [name for name, _ in FLOORS]


# --- the model contract --------------------------------------------------------------------------
def _contract_models() -> list[type]:
    import sys

    from recbole_sasrec_ext.models.registry import PLUGIN_MODELS

    sys.path.insert(0, str(ROOT / "tests" / "user_models"))
    try:
        user_model = importlib.import_module("tiny_model").TinyModel
    finally:
        sys.path.remove(str(ROOT / "tests" / "user_models"))
    return [*PLUGIN_MODELS.values(), user_model]


def test_every_registered_model_and_the_user_model_example_keep_the_model_contract():
    from recbole_sasrec_ext.contract.keys import Key
    from recbole_sasrec_ext.contract.model import PluginModel, declarations

    for model_class in _contract_models():
        assert isinstance(model_class, PluginModel), model_class.__name__
        declared = declarations(model_class)
        assert all(isinstance(key, Key) for key in declared.config_keys)
        assert isinstance(declared.one_pass, bool)
        assert isinstance(declared.needs_training_negatives, bool)


def test_the_pipeline_probes_no_model_attribute_by_name():
    """No ``getattr(x, "<a contract member>")`` / ``hasattr`` outside the contract module."""
    members = ("DATASET_CLASS", "TARGETS_AT_EVERY_POSITION", "CONFIG_KEYS", "CONFIG_RULES",
               "ONE_PASS", "NEEDS_TRAINING_NEGATIVES", "explain_example", "encode",
               "encode_sequences", "score_candidates", "SEPARATE_KV")
    probe = re.compile(r"\b(?:getattr|hasattr)\([^,]+,\s*[\"'](" + "|".join(members) + r")[\"']")
    found = [
        f"{path.relative_to(ROOT)}: {m.group(0)}"
        for path in PACKAGE_DIR.rglob("*.py")
        if path.name != "model.py" or path.parent.name != "contract"
        for m in probe.finditer(path.read_text(encoding="utf-8"))
    ]
    assert found == []


def test_pop_declares_no_loss_type():
    from recbole_sasrec_ext.models.pop import Pop

    assert "loss_type" not in {key.name for key in Pop.CONFIG_KEYS}


# --- public names -----------------------------------------------------------------------------
_FROM_IMPORT = re.compile(
    r"^[ \t]*from (recbole_sasrec_ext(?:\.\w+)*) import (\([\w\s,]+\)|[\w \t,]+)", re.M
)
_IMPORT = re.compile(r"^\s*import (recbole_sasrec_ext(?:\.\w+)*)", re.M)


def _documented_imports() -> set[tuple[str, str | None]]:
    """(module, name) of every package import in a python code block of README.md and
    docs/*.md (name None: ``import module``)."""
    found: set[tuple[str, str | None]] = set()
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = doc.read_text(encoding="utf-8")
        for block in re.findall(r"```(?:python|py)\n(.*?)```", text, re.S):
            for module, names in _FROM_IMPORT.findall(block):
                for name in names.strip("()").replace("\n", " ").split(","):
                    name = name.strip().split(" as ")[0].strip()
                    if name:
                        found.add((module, name))
            found |= {(module, None) for module in _IMPORT.findall(block)}
    return found


def test_every_name_the_docs_import_imports():
    documented = _documented_imports()
    assert (PACKAGE, "run") in documented and (PACKAGE, "Config") in documented
    missing = []
    for module, name in sorted(documented, key=str):
        try:
            imported = importlib.import_module(module)
            if name is not None and not hasattr(imported, name):
                importlib.import_module(f"{module}.{name}")
        except ImportError as exc:
            missing.append(f"{module}:{name} ({exc})")
    assert missing == []


@pytest.mark.parametrize("name", ["Config", "PluginError", "available_models", "get_model",
                                  "get_trainer", "create_dataset", "data_preparation", "run",
                                  "load_data_and_model"])
def test_the_package_exports(name):
    import recbole_sasrec_ext

    assert getattr(recbole_sasrec_ext, name) is not None
