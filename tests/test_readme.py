"""The README's examples run, and CI runs the README's own commands."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_python_examples_run(monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    blocks = re.findall(r"```python\n(.*?)```", README, re.S)
    assert blocks
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})
    assert "bits of memory" in capsys.readouterr().out


def test_ci_runs_the_readme_commands():
    ci = (ROOT / ".ci" / "run").read_text()
    for name in ("install", "main", "test"):
        block = re.search(rf"<!-- ci:{name} -->\n```sh\n(.+?)\n```\n<!-- /ci:{name} -->", README,
                          re.S)
        assert block, f"README has no ci:{name} block"
        assert f"readme_block {name}" in ci
