"""The README opens with the two fresh-machine commands, and CI runs the second one verbatim."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def opening_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("```sh\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip()]


def test_readme_opens_with_an_install_and_run_and_an_install_and_test_command():
    install_and_run, install_and_test = opening_commands()
    # Stock Debian has `python3` only, and PEP 668 refuses pip installs into it: both commands go
    # through the project's venv, made by scripts/venv.sh.
    for command in (install_and_run, install_and_test):
        assert "python " not in command.replace(".venv/bin/python ", ""), command
        assert "sh scripts/venv.sh && " in command, command
    assert install_and_run.startswith("sh scripts/venv.sh && .venv/bin/pip install . && ")
    assert ".venv/bin/ollamactl simulate" in install_and_run
    # The test command installs what the real-engine tests need first (apt as root), then the extra.
    assert install_and_test.startswith("bash scripts/install_test_deps.sh && sh scripts/venv.sh && "
                                       ".venv/bin/pip install -e '.[test]' && ")
    assert install_and_test.endswith(" && .venv/bin/mypy && .venv/bin/python -m pytest -q")  # types first


def test_ci_runs_the_readme_test_command_verbatim():
    ci_lines = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert opening_commands()[1] in ci_lines
