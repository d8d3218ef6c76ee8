"""The README is a user guide a newcomer runs: its two set-up commands are the ones CI runs, and it
stays short (design notes and measurements live in docs/)."""

import re
import shlex

from tests.conftest import ROOT


def start_here_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Start here", 1)[1].split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"```bash\n(.*?)```", section, re.S)]


def ci_commands() -> list[str]:
    lines = [ln.strip() for ln in (ROOT / ".ci" / "run").read_text().splitlines()]
    return [ln for ln in lines if ln and not ln.startswith("#")]


def test_the_two_commands_are_what_ci_runs():
    install, tests = start_here_commands()
    ci = ci_commands()
    assert tests in ci  # the test command, exactly
    pip = [w for w in shlex.split(next(ln for ln in ci if ln.startswith("pip install"))) if w != "-q"]
    steps = [shlex.split(step) for step in install.split("&&")]
    assert pip in steps  # the same pinned install (CI's only quieter)
    assert shlex.split(install)[-3:] == ["golf-audit", "audit", "submissions/legal_sliding"]


def test_readme_is_a_short_guide():
    assert len((ROOT / "README.md").read_bytes()) <= 12_500
