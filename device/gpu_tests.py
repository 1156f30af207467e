"""The suite's platform tests (``pytest -m platform``) on one OpenMM platform, in a child process."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Dict, List, Optional

import gpu_environment

# tests/conftest.py reads it: the platform tests run on these platforms only, and fail where one is missing.
PLATFORM_ENV = "OD_TEST_PLATFORM"


def junit_summary(path: Path) -> Dict[str, Any]:
    """Counts and the failing tests (id and first line of the message) of a pytest JUnit XML report."""
    root = ET.parse(path).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    problems: List[Dict[str, str]] = []
    passed: List[str] = []
    for case in suite.iter("testcase"):
        test_id = f"{case.get('classname')}::{case.get('name')}"
        bad = case.find("failure") if case.find("failure") is not None else case.find("error")
        if bad is not None:
            problems.append({"test": test_id, "message": (bad.get("message") or "").splitlines()[0][:500]
                             if bad.get("message") else ""})
        elif case.find("skipped") is None:
            passed.append(test_id)
    return {**counts, "passed": passed, "problems": problems}


def run_platform_tests(platform_name: str, timeout_s: float, select: Optional[str] = None) -> Dict[str, Any]:
    """Run ``pytest -m platform`` with ``OD_TEST_PLATFORM=platform_name``; counts, failures, output tail."""
    env = {**os.environ, PLATFORM_ENV: platform_name}
    if platform_name == "CUDA":
        # The child's OpenMM finds the CUDA libraries its plugin needs as this process did (by preloading).
        dirs = [str(d) for d in gpu_environment.nvidia_library_dirs()]
        env["LD_LIBRARY_PATH"] = os.pathsep.join(dirs + [env.get("LD_LIBRARY_PATH", "")]).strip(os.pathsep)
    with tempfile.TemporaryDirectory(prefix="gpu-check-pytest-") as tmp:
        report = Path(tmp) / "junit.xml"
        # --continue-on-collection-errors: a test module needing a package the machine lacks (the suite
        # imports most lazily) is reported as an error instead of stopping the platform tests.
        cmd = [sys.executable, "-m", "pytest", "tests", "-m", "platform", "-q", "-p", "no:cacheprovider",
               "--continue-on-collection-errors", f"--junitxml={report}"] + (["-k", select] if select else [])
        try:
            out = subprocess.run(cmd, cwd=gpu_environment.REPO, env=env, capture_output=True, text=True,
                                 timeout=timeout_s)
        except subprocess.TimeoutExpired as exc:
            tail = (exc.stdout or b"")[-3000:]
            return {"timed_out_after_s": timeout_s, "output_tail": tail.decode(errors="replace")
                    if isinstance(tail, bytes) else tail}
        result: Dict[str, Any] = {"command": " ".join(cmd[1:]), PLATFORM_ENV: platform_name,
                                  "LD_LIBRARY_PATH": env.get("LD_LIBRARY_PATH", ""),
                                  "returncode": out.returncode, "output_tail": (out.stdout + out.stderr)[-3000:]}
        if report.exists():
            result.update(junit_summary(report))
    return result
