"""The project's layout holds: no module imports another in a circle, the prediction script is no library,
and the model is a component of its own (it knows nothing of the settings or the data)."""
import ast
import glob
import os

from conftest import ROOT


def project_imports():
    """{module: set of the project's modules it imports}, imports inside functions included."""
    modules = {os.path.splitext(os.path.basename(path))[0]: path for path in glob.glob(os.path.join(ROOT, "*.py"))}
    imports = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(open(path).read())):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.add(node.module.split(".")[0])
        imports[name] = found & set(modules) - {name}
    return imports


def circle_from(start, imports):
    """A list of modules leading from `start` back to it, or None."""
    stack, seen = [(start, [start])], set()
    while stack:
        module, path = stack.pop()
        for imported in imports[module]:
            if imported == start:
                return path + [start]
            if imported not in seen:
                seen.add(imported)
                stack.append((imported, path + [imported]))
    return None


def test_no_module_imports_another_in_a_circle():
    imports = project_imports()
    assert len(imports) > 30 and "model" in imports["train"]
    circles = [circle_from(module, imports) for module in imports]
    assert [circle for circle in circles if circle] == []


def test_the_model_and_the_settings_are_apart_and_no_module_imports_the_prediction_script():
    imports = project_imports()
    assert not imports["model"] & {"parameters", "dataset"}
    assert not imports["heads"] & {"parameters", "dataset"}
    assert [module for module, found in imports.items() if "userPred" in found] == []


def test_the_library_imports_nothing_of_the_benchmarks():
    """The benchmarks' settings and helpers live in bench/, which the installed package leaves out."""
    bench = {os.path.splitext(os.path.basename(path))[0] for path in glob.glob(os.path.join(ROOT, "bench", "*.py"))}
    assert "bench_settings" in bench
    for path in glob.glob(os.path.join(ROOT, "*.py")):
        for node in ast.walk(ast.parse(open(path).read())):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not {name.split(".")[0] for name in names} & (bench | {"bench"}), path
