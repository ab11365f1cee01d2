"""No Docker engine runs on these machines: the image is not built here. What can be checked is
checked: the Dockerfile passes hadolint, and its default command is the README's main job."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_dockerfile_passes_hadolint():
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    result = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_default_command_is_the_readme_main_job():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'CMD ["make", "repro"]' in dockerfile
    assert "make repro" in (ROOT / "README.md").read_text()
