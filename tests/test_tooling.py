"""Contributor and CI tooling: pre-commit passes on a clean clone, and the GitHub workflows run
what the README and .ci/run say (actionlint itself runs in .ci/run and in pre-commit)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"


def _workflow(name):
    return yaml.safe_load((WORKFLOWS / name).read_text(encoding="utf-8"))


def _steps(job):
    return [step.get("run", "") for step in job["steps"]]


def test_pre_commit_passes_on_a_clean_clone(tmp_path):
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True, timeout=120)
    env = {**os.environ, "PYTHONPATH": str(clone), "PRE_COMMIT_HOME": str(tmp_path / "cache")}
    result = subprocess.run(
        [sys.executable, "-m", "pre_commit", "run", "--all-files", "--show-diff-on-failure"],
        cwd=clone, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    hooks = {"ruff check", "ruff format", "strip notebook outputs", "actionlint"}
    assert all(re.search(rf"^{hook}\b.*Passed$", result.stdout, re.M) for hook in hooks), (
        result.stdout
    )


def test_deploy_builds_the_readme_book_and_keeps_the_execution_cache():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    command = "jupyter-book build . -W --keep-going"
    assert re.search(rf"^{re.escape(command)}\s", readme, re.M), "README's build command changed"
    workflow = _workflow("deploy.yml")
    build = workflow["jobs"]["build"]
    assert command in _steps(build)
    assert not any("COURSE_" in key for key in {**workflow.get("env", {}), **build.get("env", {})})
    assert all("COURSE_" not in run for run in _steps(build)), "the published book is full mode"
    cache_steps = [step for step in build["steps"] if "actions/cache" in step.get("uses", "")]
    assert {step["with"]["path"] for step in cache_steps} == {"_build/.jupyter_cache"}
    assert [step["uses"].split("@")[0] for step in workflow["jobs"]["deploy"]["steps"]] == [
        "actions/deploy-pages"
    ]
    assert workflow["permissions"] == {"contents": "read", "pages": "write", "id-token": "write"}


def test_ci_workflow_runs_ci_run_with_the_torch_it_pins():
    jobs = _workflow("ci.yml")["jobs"]
    ci_run = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    pins = re.findall(r'"(torch(?:vision)?==[0-9.]+)"', ci_run)
    assert len(pins) == 2, pins
    steps = " ".join(_steps(jobs["checks"]))
    assert "bash .ci/run" in steps and all(pin in steps for pin in pins)
    assert "bash tools/lowest-versions.sh" in " ".join(_steps(jobs["lowest-versions"]))
