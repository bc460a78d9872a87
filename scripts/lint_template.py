#!/usr/bin/env python3
"""checkov (framework cloudformation) on template.yaml and parliament on every IAM policy document
of it, compared with scripts/template-findings.accepted.

A finding is `<tool> <check id> <resource or Resource.policy>`. Each line of the accepted list is
`<tool> <check id> <resource pattern> <reason…>` (shell-style pattern; `#` starts a comment).
Fails on any finding no line accepts, and on any line that accepts no finding (so the list stays
true). Prints the counts.

Usage: lint_template.py TEMPLATE ACCEPTED
"""
import fnmatch
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import template_policies  # noqa: E402
import yaml  # noqa: E402
from parliament import analyze_policy_string  # noqa: E402


def checkov_findings(template_path):
    bindir = os.path.dirname(sys.executable)
    out = subprocess.run(
        [os.path.join(bindir, "checkov"), "-f", template_path, "--framework", "cloudformation",
         "-o", "json", "--quiet", "--compact"],
        capture_output=True, text=True, check=False,
    )
    if out.returncode not in (0, 1):
        sys.exit(f"lint-template: checkov failed ({out.returncode}): {out.stderr[-2000:]}")
    report = json.loads(out.stdout) if out.stdout.strip() else {}
    reports = report if isinstance(report, list) else [report]
    found = []
    for r in reports:
        if r.get("summary", {}).get("parsing_errors"):
            sys.exit("lint-template: checkov could not parse the template")
        for f in r.get("results", {}).get("failed_checks", []):
            found.append(("checkov", f["check_id"], f["resource"].split(".", 1)[-1], f["check_name"]))
    return found


def parliament_findings(template_path):
    with open(template_path) as f:
        template = yaml.safe_load(f)
    found = []
    for key, doc in template_policies.documents(template):
        for x in analyze_policy_string(json.dumps(doc)).findings:
            found.append(("parliament", x.issue, key, str(x.detail)))
    return found


def accepted(path):
    rules = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split(None, 3)
            if len(parts) < 4:
                sys.exit(f"{path}:{n}: `tool check resource reason` expected")
            rules.append((n, parts[0], parts[1], parts[2], parts[3]))
    return rules


def main():
    template_path, accepted_path = sys.argv[1], sys.argv[2]
    findings = checkov_findings(template_path) + parliament_findings(template_path)
    rules = accepted(accepted_path)
    used = set()
    new = []
    for tool, check, where, what in findings:
        match = [r for r in rules if r[1] == tool and r[2] == check and fnmatch.fnmatchcase(where, r[3])]
        if match:
            used.update(r[0] for r in match)
        else:
            new.append(f"  {tool} {check} {where}: {what}")
    stale = [f"  line {r[0]}: {r[1]} {r[2]} {r[3]}" for r in rules if r[0] not in used]
    counts = {t: sum(1 for f in findings if f[0] == t) for t in ("checkov", "parliament")}
    print(f"lint-template: checkov {counts['checkov']} findings, parliament {counts['parliament']}; "
          f"{len(findings) - len(new)} accepted by {len(used)} lines of {os.path.basename(accepted_path)}")
    if new:
        print("findings not in the accepted list (fix them, or accept them with a reason):")
        print("\n".join(new))
    if stale:
        print("accepted lines that match no finding any more (remove them):")
        print("\n".join(stale))
    sys.exit(1 if new or stale else 0)


if __name__ == "__main__":
    main()
