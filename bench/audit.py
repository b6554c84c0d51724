"""pip-audit over the lock file, honest about what it could check.

Exit 1 when a locked package has a known vulnerability. When the advisory service cannot be
reached, or knows none of the packages (a registry mirror without advisory data), the audit
says so on one line and exits 0: an offline machine must still be able to lint.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path


def main(lock: str) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "audit.json"
        run = subprocess.run(
            [sys.executable, "-m", "pip_audit", "-r", lock, "--disable-pip", "--no-deps",
             "--progress-spinner", "off", "--format", "json", "--output", str(report)],
            capture_output=True, text=True, timeout=300, check=False,
        )
        if not report.exists():
            reason = (run.stderr.strip().splitlines() or ["no output"])[-1]
            print(f"audit: skipped, the advisory service could not be reached ({reason[:160]})")
            return 0
        data = json.loads(report.read_text())
    packages = data.get("dependencies", [])
    audited = [p for p in packages if "skip_reason" not in p]
    vulnerable = [p for p in audited if p.get("vulns")]
    for package in vulnerable:
        ids = ", ".join(v["id"] for v in package["vulns"])
        print(f"audit: {package['name']} {package['version']}: {ids}")
    if not audited:
        print(f"audit: skipped, the advisory service knows none of the {len(packages)} locked "
              "packages (a mirror without advisory data?)")
        return 0
    print(f"audit: {len(audited)} of {len(packages)} packages checked, "
          f"{len(vulnerable)} with known vulnerabilities")
    return 1 if vulnerable else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "requirements.lock"))
