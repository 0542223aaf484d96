"""The Python API (int8lab.api): the guide's example as it stands, and the same figures as the CLI."""

import json
import re
import shutil

import pytest

from conftest import ROOT, int8lab


def guide_example() -> str:
    guide = (ROOT / "docs" / "guide.md").read_text()
    section = guide[guide.index("### Python API"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.mark.slow
def test_the_guides_example_runs_and_gives_the_clis_files_and_figures(tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    shutil.copytree(ROOT / "examples" / "fashion", work / "examples" / "fashion",
                    ignore=shutil.ignore_patterns("*.pth", "*.py"))
    monkeypatch.chdir(work)
    scope = {}
    exec(compile(guide_example(), "guide.md", "exec"), scope)  # noqa: S102 (our own documentation)
    result = scope["result"]
    assert "<html" in result._repr_html_() and "top1_agreement" in repr(result)
    cli = json.loads(int8lab("quantize", "examples/fashion/model.keras", "--data", "examples/fashion/data", "--preset",
                             "unit", "-q", "--json", "-o", "out/cli", cwd=work).stdout)
    for key in ("top1_agreement", "accuracy_quantized", "accuracy_reference", "num_images"):
        assert result.metrics[key] == cli["validation"][key]
    written = {p.relative_to(work / "out" / "api") for p in (work / "out" / "api").rglob("*")
               if "again" not in p.parts and "model_fp16" not in p.name}
    assert written == {p.relative_to(work / "out" / "cli") for p in (work / "out" / "cli").rglob("*")}
    assert all(path.exists() for path in result.files.values())


def test_an_unknown_option_names_the_known_ones():
    import int8lab
    from int8lab.errors import UsageError

    with pytest.raises(UsageError, match="unknown option.*presett.*preset"):
        int8lab.quantize("model.keras", data="data", presett="unit")
