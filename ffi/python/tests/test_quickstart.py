"""The README's Python quickstart, run unchanged (in this interpreter; the script also runs
it in a fresh venv after `pip install ./ffi/python`)."""
import pathlib
import re


def quickstart() -> str:
    readme = (pathlib.Path(__file__).parents[2] / "README.md").read_text()
    section = readme.split("## Python", 1)[1]
    found: list[str] = re.findall(r"```python\n(.*?)```", section, re.S)
    return found[0]


def test_the_readme_quickstart_runs() -> None:
    exec(compile(quickstart(), "README quickstart", "exec"), {})
