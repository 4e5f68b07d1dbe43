#!/usr/bin/env python3
"""pip-audit on the locked dependencies (requirements.lock), tolerant of having no network.

Exit 1 when a locked dependency has a known vulnerability. When the
vulnerability service cannot be reached (CI runners and laptops without
internet, or an index mirror that only serves packages), the audit is
reported as skipped with the reason and exits 0: an offline machine must not
fail the build, and must not claim "no known vulnerabilities" either.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements.lock"


def main() -> int:
    if not LOCK.is_file():
        print(f"pip-audit: {LOCK} is missing: run `make lock`")
        return 1
    audit = Path(sys.executable).with_name("pip-audit")
    command = [
        str(audit), "-r", str(LOCK), "--no-deps", "--disable-pip", "--progress-spinner", "off",
        "--timeout", "10", "--format", "json",
    ]  # fmt: skip
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        print(f"pip-audit: skipped ({exc})")
        return 0
    try:
        report = json.loads(done.stdout)
    except ValueError:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        print(f"pip-audit: skipped, the vulnerability service is unreachable ({last[:200]})")
        return 0
    dependencies = report.get("dependencies", [])
    vulnerable = [d for d in dependencies if d.get("vulns")]
    skipped = [d for d in dependencies if d.get("skip_reason")]
    for dep in vulnerable:
        ids = ", ".join(v["id"] for v in dep["vulns"])
        print(f"pip-audit: {dep['name']} {dep.get('version', '')}: {ids}")
    if vulnerable:
        print(f"pip-audit: {len(vulnerable)} locked dependencies have known vulnerabilities")
        return 1
    if dependencies and len(skipped) == len(dependencies):
        print(
            f"pip-audit: skipped, none of the {len(dependencies)} locked dependencies could be "
            "looked up (offline, or the index has no vulnerability data)"
        )
        return 0
    print(
        f"pip-audit: no known vulnerabilities in {len(dependencies) - len(skipped)} locked "
        f"dependencies ({len(skipped)} could not be looked up)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
