"""Structural rules of the package that are easy to break without noticing."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import preprocess_service
from preprocess_service import errors
from preprocess_service.model_sets import MODEL_SETS
from preprocess_service.settings import Settings

PACKAGE = Path(preprocess_service.__file__).parent


def _all_modules():
    for info in pkgutil.walk_packages([str(PACKAGE)], prefix="preprocess_service."):
        if info.name.endswith(("cli", "__main__")):
            continue
        importlib.import_module(info.name)


def test_every_error_type_lives_in_the_errors_module():
    _all_modules()
    seen, stack = [], [errors.OCRError]
    while stack:
        cls = stack.pop()
        seen.append(cls)
        stack.extend(cls.__subclasses__())
    elsewhere = sorted(f"{c.__module__}.{c.__name__}" for c in seen if c.__module__ != errors.__name__
                       and c.__module__.startswith("preprocess_service"))
    assert elsewhere == []


def test_routes_do_not_reach_into_app_state_or_the_pipeline():
    for path in (PACKAGE / "api" / "routes").glob("*.py"):
        tree = ast.parse(path.read_text())
        attrs = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
        assert "state" not in attrs, f"{path.name} reads app.state: use the typed dependencies in api/deps.py"
        assert "pipeline" not in attrs, f"{path.name} reaches into the pipeline: go through OCRService.process"
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.endswith(("imaging", "documents", "fetch", "visualize")), \
                    f"{path.name} decodes input itself ({node.module}): OCRService.process owns that"
                assert not node.module.endswith("pipeline") and "stages" not in node.module.split("."), \
                    f"{path.name} imports {node.module}: routes speak options (options.py) and results (results.py)"


def test_app_state_is_read_in_one_place():
    hits = [p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py") if "app.state." in p.read_text()
            and p.name not in ("deps.py", "app.py")]
    assert hits == []


def test_model_set_choices_come_from_the_registry():
    choices = Settings.model_json_schema()["properties"]["model_set"]["enum"]
    assert choices == sorted(MODEL_SETS)
    for name, ms in MODEL_SETS.items():
        s = Settings(api_tokens="t", model_set=name)
        assert s.model_names == ms.folders() and s.orientation_default is ms.orientation_default


def test_no_test_helper_ships_in_the_runtime_package():
    assert not (PACKAGE / "localserver.py").exists()
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text()
        assert "import pytest" not in text and "harness" not in text, path


def test_every_module_says_what_it_owns():
    """A module docstring on every non-empty module of the service, the benchmarks, the export
    scripts and the evaluation."""
    root = PACKAGE.parent
    missing = []
    for package in ("preprocess_service", "bench", "export_scripts", "evaluation", "harness", "triton_local"):
        for path in sorted((root / package).rglob("*.py")):
            text = path.read_text()
            if text.strip() and not ast.get_docstring(ast.parse(text)):
                missing.append(path.relative_to(root).as_posix())
    assert missing == []


def test_every_error_code_has_one_http_status_and_only_the_api_knows_it():
    """Errors are data: each error type's code is in api.errors.STATUS, and no module outside
    api/ (nor the error module) speaks of HTTP statuses or headers."""
    from preprocess_service.api.errors import STATUS

    _all_modules()
    seen, stack = set(), [errors.OCRError]
    while stack:
        cls = stack.pop()
        seen.add(cls.code)
        stack.extend(cls.__subclasses__())
    assert seen <= set(STATUS), sorted(seen - set(STATUS))
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel.startswith("api/") or rel in ("server.py", "cli.py", "fetch.py"):
            continue  # the API; the HTTP server; the client of the CLI; fetch reads other servers' answers
        tree = ast.parse(path.read_text())
        names = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)} | {
            n.arg for n in ast.walk(tree) if isinstance(n, ast.keyword) and n.arg}
        assert not names & {"status_code", "headers"}, f"{rel} speaks HTTP ({sorted(names & {'status_code', 'headers'})})"


def test_the_service_goes_through_the_pipeline_not_past_it():
    """service.py sizes pages and reads them through the Pipeline (det_shape, options, read):
    it imports no stage."""
    tree = ast.parse((PACKAGE / "service.py").read_text())
    modules = {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    modules |= {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
    assert not any(m == "stages" or m.startswith("stages") or ".stages" in m for m in modules), modules


def test_the_api_asks_the_backend_whether_it_is_remote():
    """No module of api/ decides by the backend's name (a new remote backend must not need them
    changed): it asks the backend (``InferenceBackend.remote``)."""
    for path in (PACKAGE / "api").rglob("*.py"):
        text = path.read_text()
        assert '== "triton"' not in text and '!= "triton"' not in text, path.name


def test_no_function_of_the_service_is_over_sixty_lines():
    long = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1  # type: ignore[operator]
                if lines > 60:
                    long.append(f"{path.relative_to(PACKAGE)}:{node.name} ({lines})")
    assert long == []


def test_the_unit_tier_starts_no_server_and_no_service_process():
    """tests/unit runs functions and modules in-process: a test that starts the service, a local
    HTTP server or a subprocess of Python belongs in tests/e2e (docs/testing.md)."""
    unit = PACKAGE.parent / "tests" / "unit"
    starts = ("HTTPServer", "serve_forever", "LocalServer", "LocalTriton", "sys.executable", "Popen(")
    offenders = [f"{p.name}: {word}" for p in sorted(unit.glob("test_*.py")) for word in starts
                 if word in p.read_text() and p.name != "test_code_shape.py"]
    assert offenders == []


def test_export_scripts_read_one_catalogue():
    """The published models are described once (export_scripts/catalogue.py, which imports none of
    its readers); triton_config reads the catalogue, not fetch_models (which imports triton_config);
    no export script has an import statement of bench."""
    root = PACKAGE.parent / "export_scripts"
    catalogue = ast.parse((root / "catalogue.py").read_text())
    assert not [n for n in ast.walk(catalogue) if isinstance(n, ast.ImportFrom) and (n.module or "").startswith("export_scripts")]
    for path in root.glob("*.py"):
        text = path.read_text()
        modules = {n.module or "" for n in ast.walk(ast.parse(text)) if isinstance(n, ast.ImportFrom)}
        modules |= {a.name for n in ast.walk(ast.parse(text)) if isinstance(n, ast.Import) for a in n.names}
        assert not any(m == "bench" or m.startswith("bench.") for m in modules), path.name
        if path.name == "triton_config.py":
            assert "export_scripts.fetch_models" not in modules, "triton_config imports fetch_models: a cycle"
