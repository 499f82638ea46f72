"""The registry file's header points to what every install has (the help, the README), and no
package index host is named anywhere in the project."""

import subprocess
from pathlib import Path

from cli_helpers import ok

ROOT = Path(__file__).resolve().parent.parent
INDEX_HOSTS = ("pypi" + ".org", "pypi" + ".python.org", "files.python" + "hosted.org", "test." + "pypi" + ".org")


def test_a_new_registry_file_points_to_the_help_and_the_readme(isolated_env):
    ok("add", "gpu1")
    head = isolated_env["config"].read_text().splitlines()[:2]
    assert head[1] == "# Reference: `ollamactl --help`, and the section 'The registry file' of ollamactl's README."
    assert "ollamactl --help" in head[1] and "README" in head[1]


def test_no_package_index_host_is_named_in_the_project():
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    hits = []
    for relative in tracked.splitlines():
        path = ROOT / relative
        try:
            text = path.read_text(encoding="utf-8").lower()
        except (UnicodeDecodeError, FileNotFoundError, IsADirectoryError):
            continue
        hits += [f"{relative}: {host}" for host in INDEX_HOSTS if host in text]
    assert not hits, hits
