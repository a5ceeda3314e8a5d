"""The docs hold no stale figure: README.md and docs/*.md are what docs/render.py makes of
docs/artifacts/*.json (`make docs-check`), and the check really fails when they are not."""

from __future__ import annotations

import importlib.util
import re
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("docs_render", ROOT / "docs" / "render.py")
assert _spec and _spec.loader
render = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(render)


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """A repository root whose README.md and docs/ are copies (free to edit); everything else
    is linked to the real tree, so the checks that files exist still see it."""
    for entry in ROOT.iterdir():
        if entry.name in ("README.md", "SECURITY.md", "docs", ".git"):
            continue
        (tmp_path / entry.name).symlink_to(entry)
    shutil.copy2(ROOT / "README.md", tmp_path / "README.md")
    shutil.copy2(ROOT / "SECURITY.md", tmp_path / "SECURITY.md")
    shutil.copytree(ROOT / "docs", tmp_path / "docs", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def regions(text: str) -> dict[str, str]:
    return {m.group(1): m.group(2) for m in render.REGION.finditer(text)}


def test_the_docs_are_what_the_artifacts_give():
    problems = render.check(ROOT)
    assert not problems, "\n".join(problems) + "\n(run `make docs`, or fix the prose)"


def test_every_region_is_used_and_every_doc_region_is_known():
    used = set()
    for doc in render.docs(ROOT):
        used |= set(regions(doc.read_text(encoding="utf-8")))
    assert used == set(render.REGIONS)


def test_the_readme_stays_short():
    assert len((ROOT / "README.md").read_text(encoding="utf-8").splitlines()) <= 250


def test_a_figure_edited_by_hand_fails_the_check(copy: Path):
    assert render.check(copy) == []
    perf = copy / "docs" / "performance.md"
    text = perf.read_text(encoding="utf-8")
    table = regions(text)["bench-table"]
    # change one figure of the `ours` row: 1.96 -> 1.97, say
    edited = re.sub(r"(\| ours \| )(\d)", lambda m: m.group(1) + str((int(m.group(2)) + 1) % 10), table, count=1)
    assert edited != table
    perf.write_text(text.replace(table, edited), encoding="utf-8")
    assert any("docs/performance.md: a generated region differs" in p for p in render.check(copy))
    # rendering (what `make docs` does) puts it back
    new = render.render(perf.read_text(encoding="utf-8"), render.Artifacts(copy))
    perf.write_text(new, encoding="utf-8")
    assert render.check(copy) == []


def test_a_changed_artifact_fails_the_check_until_rendered(copy: Path):
    art = copy / "docs" / "artifacts" / "levers.json"
    art.write_text(art.read_text(encoding="utf-8").replace('"images": 35', '"images": 36', 1), encoding="utf-8")
    assert any("docs/performance.md: a generated region differs" in p for p in render.check(copy))
    perf = copy / "docs" / "performance.md"
    perf.write_text(render.render(perf.read_text(encoding="utf-8"), render.Artifacts(copy)), encoding="utf-8")
    assert render.check(copy) == []
    assert "36 images" in perf.read_text(encoding="utf-8")


def test_a_missing_artifact_fails_the_check_and_names_its_command(copy: Path):
    (copy / "docs" / "artifacts" / "levers.json").unlink()
    problems = render.check(copy)
    assert any("levers.json is missing" in p and "make levers" in p for p in problems), problems
    with pytest.raises(render.MissingArtifact):
        render.render((copy / "docs" / "performance.md").read_text(encoding="utf-8"), render.Artifacts(copy))


def test_a_figure_in_the_prose_fails_the_check(copy: Path):
    readme = copy / "README.md"
    readme.write_text(readme.read_text(encoding="utf-8") + "\nThe service reads 2.31 images/s on our laptop.\n",
                      encoding="utf-8")
    assert any("a figure outside a generated region" in p for p in render.check(copy))


def test_unknown_or_unclosed_regions_fail(copy: Path):
    doc = copy / "docs" / "testing.md"
    original = doc.read_text(encoding="utf-8")
    doc.write_text(original + "\n<!-- BEGIN generated: nonsense -->\n<!-- END generated: nonsense -->\n", encoding="utf-8")
    assert any("unknown region 'nonsense'" in p for p in render.check(copy))
    doc.write_text(original + "\n<!-- BEGIN generated: headline -->\n", encoding="utf-8")
    assert any("no partner" in p for p in render.check(copy))


def test_paths_and_links_that_do_not_exist_fail(copy: Path):
    doc = copy / "docs" / "testing.md"
    doc.write_text(doc.read_text(encoding="utf-8")
                   + "\nSee `tests/unit/test_gone.py`, `test_reliability.py::test_gone`, [x](gone.md) and " + render.OUTSIDE + "/eval.\n",
                   encoding="utf-8")
    problems = "\n".join(render.check(copy))
    assert "`tests/unit/test_gone.py` does not exist" in problems
    assert "has no `test_gone`" in problems
    assert "link 'gone.md'" in problems
    assert render.OUTSIDE in problems


def test_every_setting_is_documented_and_every_documented_setting_exists():
    """docs/configuration.md cannot fall behind settings.py: each OCR_* field is in its table,
    and each OCR_* variable it names is a real field."""
    from preprocess_service.settings import Settings

    text = (ROOT / "docs" / "configuration.md").read_text()
    fields = {f"OCR_{name.upper()}" for name in Settings.model_fields}
    documented = set(re.findall(r"`(OCR_[A-Z0-9_]+)`", text))
    assert sorted(fields - documented) == []
    assert sorted(documented - fields) == []


@pytest.mark.parametrize("words", [("as measured in", "this", "session"), ("see", "issue", "24"),
                                   ("on a", "shared", "machine"), ("the figure was", "made", "here"),
                                   ("timings from the", "previous", "session")])
def test_a_doc_that_describes_the_work_fails_the_check(copy: Path, words: tuple[str, ...]):
    """Docs describe the project and the machine a figure came from, not how the work went. (The
    phrases are given as words, so that this file holds none of them.)"""
    phrase = " ".join(words)
    assert render.check(copy) == []
    doc = copy / "docs" / "deployment.md"
    doc.write_text(doc.read_text(encoding="utf-8") + f"\nA note: {phrase}.\n", encoding="utf-8")
    assert any("describes the work, not the project" in p for p in render.check(copy))


def test_an_artifact_no_command_writes_fails_the_check(copy: Path):
    """Every file in docs/artifacts/ has its command in the README's generated artifact table."""
    assert render.check(copy) == []
    (copy / "docs" / "artifacts").unlink() if (copy / "docs" / "artifacts").is_symlink() else None
    (copy / "docs" / "artifacts" / "orphan.png").write_bytes(b"\x89PNG")
    assert any("orphan.png: no command writes it" in p for p in render.check(copy))


def test_the_readme_links_every_doc():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for doc in sorted((ROOT / "docs").glob("*.md")):
        assert f"(docs/{doc.name})" in readme, doc.name


def test_long_subprocess_tests_are_not_cut_off_by_the_suite_timeout():
    """pytest-timeout (pyproject: 300 s) must not cut a test whose own subprocess may run longer:
    a test with a subprocess timeout above it carries its own, larger, timeout mark."""
    import ast

    default = 300
    for path in sorted((ROOT / "tests").rglob("test_*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for fn in [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")]:
            longest = max((kw.value.value for call in ast.walk(fn) if isinstance(call, ast.Call)
                            for kw in call.keywords if kw.arg == "timeout" and isinstance(kw.value, ast.Constant)
                            and isinstance(kw.value.value, int | float)), default=0)
            if longest <= default:
                continue
            marks = [d for d in fn.decorator_list if isinstance(d, ast.Call) and ast.unparse(d.func).endswith("mark.timeout")]
            assert marks and marks[0].args[0].value > longest, f"{path.name}::{fn.name} waits {longest} s"


def test_make_test_reports_its_slowest_tests():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    recipe = makefile.split("\ntest:", 1)[1].split("\n\n", 1)[0]
    assert "--durations=" in recipe
