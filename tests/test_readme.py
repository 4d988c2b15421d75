"""The README's Python API example runs as written."""

import os
import re

README = os.path.join(os.path.dirname(__file__), "..", "README.md")


def test_readme_api_example_runs_as_a_script_with_its_speed_check(tmp_path):
    """As a user runs it: a plain script (no ``if __name__ == "__main__":``), the speed check
    on. Its timing children must not run the script again (they did: the second
    ``build("toy_tf1", "toy_model")`` failed in each child, and the note blamed TensorFlow)."""
    import subprocess
    import sys

    text = open(README).read()
    section = text[text.index("## Python API"):]
    (tmp_path / "example.py").write_text(re.search(r"```python\n(.*?)```", section, re.S).group(1))
    env = {k: v for k, v in os.environ.items() if k != "TFOPT_TIME"}
    done = subprocess.run([sys.executable, "example.py"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Traceback" not in done.stderr and "already exists" not in done.stderr
    summary = done.stdout.splitlines()[0]
    assert "verified (oneDNN on and oneDNN off)" in summary
    assert "batch 2" in summary and "process died" not in done.stdout  # timed, not failed
    assert "signature serving_default" in done.stdout and (tmp_path / "toy_model_fast").is_dir()
