"""The README's Python API example runs as written."""

import os
import re

README = os.path.join(os.path.dirname(__file__), "..", "README.md")


def test_readme_api_example_runs(tmp_path, monkeypatch, capsys):
    text = open(README).read()
    section = text[text.index("## Python API"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "toy_model_fast: " in out and "verified (oneDNN on and oneDNN off)" in out
    assert "signature serving_default" in out and (tmp_path / "toy_model_fast").is_dir()
