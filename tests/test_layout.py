"""Imports run one way: udfs <- the library <- jobs <- the command line; no job imports another."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYERS = {"udfs": 0, "library": 1, "jobs": 2, "cli": 3}


def module_of(path: Path) -> str:
    relative = path.relative_to(ROOT).with_suffix("")
    parts = list(relative.parts)
    if parts[0] in ("jobs", "udfs"):
        parts = ["facecluster", *parts]
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def layer(module: str) -> str | None:
    if not module.startswith("facecluster"):
        return None
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in ("udfs", "jobs", "cli"):
        return parts[1]
    return "library"


def imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def sources():
    for folder in ("facecluster", "jobs", "udfs"):
        yield from sorted((ROOT / folder).rglob("*.py"))


def test_imports_run_one_way_and_no_job_reaches_into_another():
    wrong = []
    for path in sources():
        here = module_of(path)
        for target in imports(path):
            there = layer(target)
            if there is None:
                continue
            if LAYERS[there] > LAYERS[layer(here)]:
                wrong.append(f"{here} ({layer(here)}) imports {target} ({there})")
            if layer(here) == "jobs" == there and target.split(".")[:3] != here.split(".")[:3] \
                    and target != "facecluster.jobs":
                wrong.append(f"job {here} imports job {target}")
    assert not wrong, "\n".join(wrong)


def test_nothing_generic_is_installed_beside_the_package():
    import tomllib

    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    assert all(name == "facecluster" or name.startswith("facecluster.") for name in packages)
    folders = {module_of(init.parent / "__init__.py") for init in (ROOT / "facecluster").rglob("__init__.py")}
    assert folders | {"facecluster.jobs", "facecluster.udfs"} <= set(packages), "a sub-package is not installed"
    assert not (ROOT / "facecluster" / "inspect.py").exists()  # it shadowed the standard library's inspect


def test_the_command_line_answers_help_without_the_data_stack():
    import subprocess
    import sys

    probe = ("import sys; from facecluster.cli import build_parser; build_parser(); "
             "print(sorted(m for m in ('numpy', 'pandas', 'pyspark', 'torch', 'yaml') if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "['yaml']"  # yaml: the settings' defaults file, read when a command runs
    shown = subprocess.run([sys.executable, "-m", "facecluster.cli", "embed", "--help"], capture_output=True,
                           text=True, check=True).stdout
    assert shown.startswith("usage: facecluster embed") and "--embedder" in shown
    cluster_help = subprocess.run([sys.executable, "-m", "facecluster.cli", "cluster", "--help"], capture_output=True,
                                  text=True, check=True).stdout
    assert "--embedder" not in cluster_help and "--verbose" in cluster_help
    version = subprocess.run([sys.executable, "-m", "facecluster.cli", "--version"], capture_output=True, text=True,
                             check=True).stdout
    assert version.startswith("facecluster ")
