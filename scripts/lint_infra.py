#!/usr/bin/env python3
"""Checkov over infra/ (Bicep), held to three rules; run by scripts/lint-infra.sh in its venv.

1. Every .bicep file under infra/ is parsed by checkov. A file its parser (pycep) cannot read
   is skipped by checkov with a line in its report, and none of its resources is checked:
   any parse error fails the lint, and the files are also parsed here, one by one, with
   checkov's own parser, so a file checkov never reported on cannot slip through.
2. Every failed check is waived next to its resource, inside the resource block:
       // checkov:skip=CKV_AZURE_NN: the reason, specific to this deployment
   Checkov applies these itself to its Python checks. Its Bicep runner ignores them for graph
   checks (CKV_AZURE_23, 24 and 25 on SQL), so this script applies the same comments to
   those failures. A waiver without a reason, or one that matches no check on its resource
   (misplaced, or left behind after a fix), fails the lint.
3. Checkov reads the properties of a resource only when it is declared plainly: a resource
   declared with `= if (...)` or `= [for ...]` is counted but its properties are never looked
   at. Such a resource of a type checkov has checks for fails the lint (declare it plainly in a
   module the condition or loop applies to instead, as scriptstorage.bicep is).

A waiver must still be needed: the scan is repeated on a copy without the waivers, and a
waived check that passes there fails the lint.

Then a private view: a copy of infra/ with privateNetworking's single-line conditionals
(`privateNetworking ? a : b`) resolved to their true branch, its default set to true and the
waivers removed, scanned again. It reports which waivers the private configuration makes
unnecessary, and fails the lint if the private configuration fails a check that no waiver in
the default view covers.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

SKIP = re.compile(r"//\s*checkov:skip=([A-Za-z0-9_]+)(?::\s*(.*))?$")
MIN_REASON = 20


def start_checkov(checkov: str, directory: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [checkov, "-d", str(directory), "--framework", "bicep", "-o", "json", "--skip-download"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish_checkov(proc: subprocess.Popen) -> dict:
    stdout, stderr = proc.communicate()
    # checkov exits 1 when a check fails; anything else without JSON is a broken run.
    try:
        report = json.loads(stdout)
    except json.JSONDecodeError:
        sys.stderr.write(stdout[-2000:] + stderr[-4000:])
        raise SystemExit(f"lint-infra: checkov produced no JSON report (exit {proc.returncode})")
    if isinstance(report, list):  # one report per framework; only bicep was asked for
        report = next((r for r in report if r.get("check_type") == "bicep"), {})
    results = report.get("results", {})
    return {
        "passed": results.get("passed_checks", []),
        "failed": results.get("failed_checks", []),
        "skipped": results.get("skipped_checks", []),
        "parsing_errors": results.get("parsing_errors", []),
        "summary": report.get("summary", {}),
    }


def waivers_in(root: Path) -> list[dict]:
    found = []
    for path in sorted(root.rglob("*.bicep")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            m = SKIP.search(line)
            if m:
                found.append(
                    {
                        "file": "/" + str(path.relative_to(root)),
                        "line": number,
                        "check": m.group(1),
                        "reason": (m.group(2) or "").strip(),
                    }
                )
    return found


def key(record: dict) -> tuple[str, str, str]:
    return (record["file_path"], record["resource"], record["check_id"])


def classify(scan: dict, waivers: list[dict]) -> dict:
    """Splits checkov's failures into waived (a skip comment inside the resource's lines) and
    not, and finds waivers that match nothing."""
    used: set[int] = set()

    def waiver_for(record: dict) -> dict | None:
        start, end = record["file_line_range"]
        for i, w in enumerate(waivers):
            if w["file"] == record["file_path"] and w["check"] == record["check_id"] and start <= w["line"] <= end:
                used.add(i)
                return w
        return None

    for record in scan["skipped"]:
        waiver_for(record)
    waived, unwaived = [], []
    for record in scan["failed"]:
        w = waiver_for(record)
        (waived if w else unwaived).append((record, w))
    stale = [w for i, w in enumerate(waivers) if i not in used]
    return {"waived": waived, "unwaived": unwaived, "stale": stale}


def inventory(root: Path) -> tuple[dict[str, list[dict]], list[str]]:
    """Resources per file as checkov's parser sees them, and the files it cannot parse."""
    from checkov.bicep.parser import Parser

    parser = Parser()
    per_file: dict[str, list[dict]] = {}
    unparsed = []
    for path in sorted(root.rglob("*.bicep")):
        rel = "/" + str(path.relative_to(root))
        template, _ = parser.parse(path)
        if template is None:
            unparsed.append(rel)
            continue
        resources = []
        for name, conf in (template.get("resources") or {}).items():
            config = conf.get("config") or {}
            resources.append(
                {
                    "name": name,
                    "type": conf["type"],
                    "existing": conf.get("existing", False),
                    "conditional": "condition" in config and config.get("condition") is not None,
                    "loop": "loop_type" in config,
                    "line": conf.get("__start_line__"),
                }
            )
        modules = list((template.get("modules") or {}).keys())
        per_file[rel] = resources + [{"name": str(m), "type": "module", "module": True} for m in modules]
    return per_file, unparsed


def checked_types() -> set[str]:
    """Resource types checkov has at least one Bicep check for (Python or graph)."""
    import checkov.main  # noqa: F401  registers every check
    import checkov.bicep.checks.graph_checks as graph_dir
    from checkov.bicep.checks.resource.registry import registry

    types = {t.lower() for t in registry.checks}

    def walk(node):
        if isinstance(node, dict):
            for v in node.values():
                yield from walk(v)
        elif isinstance(node, list):
            for v in node:
                yield from walk(v)
        elif isinstance(node, str) and node.startswith("Microsoft."):
            yield node

    for path in Path(graph_dir.__file__).parent.glob("*.json"):
        types.update(t.lower() for t in walk(json.loads(path.read_text())))
    return types


TERNARY = re.compile(
    r"\bprivateNetworking\s*\?\s*('[^']*'|true|false|null|\{\}|\[\]|[A-Za-z_][\w.?]*)\s*:\s*('[^']*'|true|false|null|\{\}|\[\]|[A-Za-z_][\w.?]*)"
)


def stripped_copy(src: Path, dst: Path, private: bool) -> list[str]:
    """Copies src to dst with every waiver removed (same line numbers) and, if private, with
    privateNetworking taken as true; returns the conditionals it could not resolve."""
    shutil.copytree(src, dst)
    unresolved = []
    for path in sorted(dst.rglob("*.bicep")):
        lines = path.read_text().splitlines()
        out = []
        for number, line in enumerate(lines, 1):
            if SKIP.search(line):
                line = line[: line.index("//")] + "// (waiver removed)"
            if not private:
                out.append(line)
                continue
            line = TERNARY.sub(lambda m: m.group(1), line)
            line = re.sub(r"^param privateNetworking bool = false$", "param privateNetworking bool = true", line)
            code = line.split("//", 1)[0]
            if re.search(r"\bprivateNetworking\s*\?", code):
                unresolved.append(f"/{path.relative_to(dst)}:{number}")
            out.append(line)
        path.write_text("\n".join(out) + "\n")
    return unresolved


def _copy(src: Path, dst: Path, private: bool) -> Path:
    stripped_copy(src, dst, private)
    return dst


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--infra", default="infra", type=Path)
    ap.add_argument("--checkov", default="checkov")
    ap.add_argument("--json", type=Path, help="also write the findings here as JSON")
    args = ap.parse_args()
    infra = args.infra.resolve()
    problems: list[str] = []

    files = sorted("/" + str(p.relative_to(infra)) for p in infra.rglob("*.bicep"))
    if not files:
        raise SystemExit(f"lint-infra: no .bicep files under {infra}")

    # Three scans at once: infra/ as written, a copy without the waivers, and the private view.
    tmp = tempfile.TemporaryDirectory()
    bare_dir = _copy(infra, Path(tmp.name) / "bare" / "infra", private=False)
    private_dir = Path(tmp.name) / "private" / "infra"
    unresolved = stripped_copy(infra, private_dir, private=True)
    procs = [start_checkov(args.checkov, d) for d in (infra, bare_dir, private_dir)]
    scan = finish_checkov(procs[0])
    waivers = waivers_in(infra)
    split = classify(scan, waivers)
    per_file, unparsed = inventory(infra)
    checkov_unparsed = sorted("/" + str(Path(p).resolve().relative_to(infra)) for p in scan["parsing_errors"])
    unparsed_all = sorted(set(unparsed) | set(checkov_unparsed))

    # 1. every file parsed and scanned
    for f in unparsed_all:
        problems.append(f"{f}: checkov cannot parse it, so none of its resources is checked")
    missing = [f for f in files if f not in per_file and f not in unparsed_all]
    for f in missing:
        problems.append(f"{f}: not seen by checkov's parser")

    # 2. waivers: reasons, placement, and every failure waived
    for w in waivers:
        if len(w["reason"]) < MIN_REASON:
            problems.append(f"{w['file']}:{w['line']}: waiver of {w['check']} without a real reason")
    for w in split["stale"]:
        problems.append(
            f"{w['file']}:{w['line']}: waiver of {w['check']} matches no check on its resource "
            "(put it inside the resource block, or remove it if the check passes now)"
        )
    for record, _ in split["unwaived"]:
        problems.append(
            f"{record['file_path']}:{record['file_line_range'][0]}: {record['check_id']} failed on "
            f"{record['resource']}: {record['check_name']}"
        )

    # 3. no checked resource hidden behind a condition or a loop
    types = checked_types()
    hidden = []
    for f, resources in per_file.items():
        for r in resources:
            if r.get("module") or r["existing"]:
                continue
            if (r["conditional"] or r["loop"]) and r["type"].lower() in types:
                hidden.append(r)
                problems.append(
                    f"{f}:{r['line']}: {r['type']}.{r['name']} is declared with "
                    f"{'a condition' if r['conditional'] else 'a loop'}, so checkov never reads its properties"
                )

    # every waiver still needed: the same scan without them must fail each waived check
    bare = finish_checkov(procs[1])
    bare_passed = {key(r) for r in bare["passed"]}
    for r in scan["skipped"]:
        if key(r) in bare_passed:
            problems.append(
                f"{r['file_path']}:{r['file_line_range'][0]}: {r['check_id']} passes on {r['resource']} "
                "without its waiver: remove the waiver"
            )

    # the private-networking view
    private = finish_checkov(procs[2])
    private["parsing_errors"] = [
        "/" + str(Path(p).resolve().relative_to(private_dir.resolve())) for p in private["parsing_errors"]
    ]
    tmp.cleanup()
    default_waived = {(r["file_path"], r["resource"], r["check_id"]) for r in scan["skipped"]}
    default_waived |= {key(r) for r, _ in split["waived"]}
    private_failed = {key(r): r for r in private["failed"]}
    private_passed = {key(r) for r in private["passed"]}
    not_needed = sorted(k for k in default_waived if k in private_passed)
    new_failures = sorted(k for k in private_failed if k not in default_waived)
    for k in new_failures:
        r = private_failed[k]
        problems.append(f"private view: {k[2]} failed on {k[1]} ({k[0]}): {r['check_name']}")
    for f in unresolved:
        problems.append(f"private view: {f}: a privateNetworking conditional this script cannot resolve")
    for f in private["parsing_errors"]:
        problems.append(f"private view: checkov cannot parse {f}")

    # report
    skipped = sorted(scan["skipped"], key=lambda r: (r["file_path"], r["file_line_range"][0], r["check_id"]))
    print("Infrastructure scan: checkov", scan["summary"].get("checkov_version", "?"), "--framework bicep over infra/")
    print()
    print(f"Files: {len(files)}, parsed by checkov: {len(per_file) - len(set(per_file) & set(unparsed_all))}")
    for f in files:
        resources = per_file.get(f)
        if resources is None:
            print(f"  {f}: NOT PARSED")
            continue
        plain = [r for r in resources if not r.get("module")]
        mods = len(resources) - len(plain)
        flags = []
        cond = sum(1 for r in plain if r.get("conditional"))
        loops = sum(1 for r in plain if r.get("loop"))
        existing = sum(1 for r in plain if r.get("existing"))
        for n, label in ((cond, "conditional"), (loops, "looped"), (existing, "existing")):
            if n:
                flags.append(f"{n} {label}")
        print(f"  {f}: {len(plain)} resources" + (f" ({', '.join(flags)})" if flags else "") + (f", {mods} modules" if mods else ""))
    print()
    print(
        f"Checks: {len(scan['passed'])} passed, {len(split['unwaived'])} failed, "
        f"{len(scan['skipped']) + len(split['waived'])} waived "
        f"({len(scan['skipped'])} skipped by checkov, {len(split['waived'])} graph-check failures waived here), "
        f"{len(unparsed_all)} parse errors"
    )
    print(f"  checkov's own summary: {json.dumps(scan['summary'])}")
    print()
    print("Waivers:")
    rows = [(r["check_id"], r["resource"], r["file_path"], r["file_line_range"][0], (r["check_result"].get("suppress_comment") or "").strip()) for r in skipped]
    rows += [(r["check_id"], r["resource"], r["file_path"], r["file_line_range"][0], w["reason"] + "  [graph check: waived by this script]") for r, w in split["waived"]]
    for check, resource, path, line, reason in sorted(rows, key=lambda x: (x[2], x[3], x[0])):
        print(f"  {check:14} {resource} ({path}:{line})")
        print(f"                 {reason}")
    print()
    print(
        f"Private-networking view (privateNetworking = true, its conditionals resolved, waivers removed): "
        f"{len(private['passed'])} passed, {len(private['failed'])} failed, {len(private['parsing_errors'])} parse errors"
    )
    if not_needed:
        print("  waivers privateNetworking makes unnecessary (the check passes there):")
        for path, resource, check in not_needed:
            print(f"    {check} on {resource} ({path})")
    print(f"  failures there that no waiver covers: {len(new_failures)}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "files": files,
                    "summary": scan["summary"],
                    "passed": len(scan["passed"]),
                    "failed_unwaived": [key(r) for r, _ in split["unwaived"]],
                    "waivers": [
                        {"check": c, "resource": res, "file": p, "line": ln, "reason": why}
                        for c, res, p, ln, why in rows
                    ],
                    "private_view": {
                        "passed": len(private["passed"]),
                        "failed": len(private["failed"]),
                        "waivers_not_needed": not_needed,
                    },
                    "problems": problems,
                },
                indent=2,
            )
        )
    print()
    if problems:
        print(f"FAILED: {len(problems)} problem(s)")
        for p in problems:
            print(f"  - {p}")
        return 1
    print("OK: every file parsed, every failed check waived with a reason")
    return 0


if __name__ == "__main__":
    sys.exit(main())
