#!/usr/bin/env python3
"""Per-check results of the original isula-build suites, from the logs run-suites.sh leaves.

Usage: report.py OUT CLIENT...   (writes OUT/report.md and OUT/<client>/checks.json, prints the table)

The 61 checks:
  base (15)         tests/src/isula_build_base_command.sh: the 4 "Outputs with dockerfile X" groups
                    (6 build/rm pairs each; the isulad pair is skipped: no isulad) and the 11 base commands.
  cover (32)        every check_result_equal / check_result_not_equal of tests/src/cover_test_*.sh.
  integration (14)  every run_check_result / check_value of tests/src/test_*.sh, and for
                    test_save_single_image_multiple_tags.sh (which has none) the test's own verdict.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

TRACE = re.compile(r"^(\++)\[([^:\]]*):(\d+):([^\]]*)\] (.*)$")
BASE_BRIEFS = [
    "Build docker format image", "Build oci format image", "List all images",
    "List docker format image", "List oci format image", "Save image with docker format",
    "Save image with oci format", "Load docker format images", "Load oci format images",
    "Save multipile images with docker format", "Remove images",
]
DOCKERFILES = ["build-from-scratch", "add-chown-basic", "multi-files-env", "multi-stage-builds"]


def check(cid: str, ok: bool | None, reason: str = "") -> dict:
    return {"id": cid, "ok": ok, "reason": reason.rstrip()}


# ------------------------------------------------------------------------------------------ base
def base_checks(res: Path) -> tuple[list[dict], str]:
    log = (res / "base.log").read_text(errors="replace") if (res / "base.log").exists() else ""
    unchanged: dict[str, bool] = {}
    for line in log.splitlines():
        m = re.match(r"^(.*?):\s+(PASS|FAIL)\s*$", line)
        if m:
            unchanged[m.group(1).strip()] = m.group(2) == "PASS"
    failed_cmd = re.search(r"Failed when running command: (.*)", log)
    note = ("unchanged suite: all passed" if (res / "base.rc").exists()
            and (res / "base.rc").read_text().strip() == "0" else
            f"unchanged suite stopped at its first failure: {failed_cmd.group(1) if failed_cmd else '?'}")
    groups: dict[str, list[tuple[int, str, str]]] = {}
    tsv = res / "base-continue.tsv"
    if tsv.exists():
        cur = None
        for line in tsv.read_text(errors="replace").splitlines():
            if line.startswith("CHECK\t"):
                _, group, rc, label = line.split("\t", 3)
                cur = [int(rc), label, ""]
                groups.setdefault(group, []).append(cur)
            elif cur is not None:
                cur[2] += line[6:] + "\n" if line.startswith("    | ") else line + "\n"
    out = []
    for name in DOCKERFILES:
        cid = f"base: Outputs with dockerfile {name}"
        key = f"Outputs with dockerfile {name}"
        if key in groups:
            cmds_ = groups[key]
            bad = [i for i, c in enumerate(cmds_) if c[0] != 0]
            reason = ""
            for i in bad:
                if i > 0 and cmds_[i - 1][0] == 0 and " build " in cmds_[i - 1][1]:
                    reason += f"(after: $ {cmds_[i - 1][1]}  -> succeeded)\n"
                reason += f"$ {cmds_[i][1]}\n{short(cmds_[i][2])}"
            out.append(check(cid, not bad, reason))
        else:
            out.append(check(cid, unchanged.get(key)))
    cmds = {c[1].split(" :: ", 1)[0]: c for c in groups.get("base command", [])}
    for brief in BASE_BRIEFS:
        cid = f"base: {brief}"
        if brief in cmds:
            rc, lbl, txt = cmds[brief]
            out.append(check(cid, rc == 0, "" if rc == 0 else f"$ {lbl.split(' :: ', 1)[1]}\n{short(txt)}"))
        else:
            out.append(check(cid, unchanged.get(brief)))
    return out, note


def short(text: str, limit: int = 12) -> str:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    # STEP lines and image copy progress say little; keep the end, where errors are.
    if len(lines) > limit:
        lines = ["..."] + lines[-limit:]
    return "".join(f"    {ln}\n" for ln in lines)


# ----------------------------------------------------------------------------------------- cover
def cover_checks(res: Path) -> list[dict]:
    out = []
    for logf in sorted(res.glob("cover_test_*.log")):
        name = logf.stem
        found: list[tuple[str, bool, str]] = []
        context: list[str] = []
        for line in logf.read_text(errors="replace").splitlines():
            m = TRACE.match(line)
            if not m:
                context.append(line)
                continue
            depth, src, _lineno, func, cmd = m.groups()
            cm = re.match(r"check_result_(not_)?equal (\S*) (\S*)$", cmd)
            if cm and src.startswith("cover_test"):
                a, b = cm.group(2), cm.group(3)
                ok = (a != b) if cm.group(1) else (a == b)
                want = "exit != 0" if cm.group(1) else "exit 0"
                reason = "" if ok else f"expected {want}, got exit {a}\n" + short("\n".join(context), 10)
                found.append((func, ok, reason))
                context = []
            elif "isula-build " in cmd and src.startswith(("cover_test", "separator")):
                context.append("$ " + cmd)
            elif func.startswith("test_run") and len(depth) == 1 and re.match(r"(rm|mv|cp|sed|echo) ", cmd):
                context.append("$ " + cmd)
        per_func = {f: sum(1 for g, _, _ in found if g == f) for f, _, _ in found}
        seen: dict[str, int] = {}
        for func, ok, reason in found:
            seen[func] = seen.get(func, 0) + 1
            suffix = f" #{seen[func]}" if per_func[func] > 1 else ""
            out.append(check(f"cover: {name} {func}{suffix}", ok, reason))
    return out


# ----------------------------------------------------------------------------------- integration
def parse_failed_log(path: Path) -> dict[tuple[str, int], list[str]]:
    """buildlog-failed: client errors of failing systemd_run_command calls, keyed by (file, line)."""
    found: dict[tuple[str, int], list[str]] = {}
    if not path.exists():
        return found
    text = path.read_text(errors="replace")
    for block in re.findall(r"Error from client:\n(.*?)Shell Function Call Stack:\n\t0 - systemd_run_command \(([^:]+):(\d+)\)",
                            text, re.S):
        client_part = block[0].split("Error from daemon:")[0]
        found.setdefault((Path(block[1]).name, int(block[2])), []).append(client_part.strip())
    return found


def integration_checks(trace: Path, log: Path, failed: Path) -> tuple[list[dict], dict[str, list[str]]]:
    out: list[dict] = []
    setup_failures: dict[str, list[str]] = {}
    if not trace.exists():
        return out, setup_failures
    client_errors = parse_failed_log(failed)
    used: dict[tuple[str, int], int] = {}
    pending = None          # (kind, cid, src, args)
    last_sys = None         # (src, line, cmd) of the latest systemd_run_command call
    top: dict[str, str] = {}
    counts: dict[str, int] = {}
    for line in trace.read_text(errors="replace").splitlines():
        m = TRACE.match(line)
        if not m:
            continue
        depth, src, lineno, func, cmd = m.groups()
        if src.startswith("test_") and func == "main" and re.match(r"[a-z_]+$", cmd):
            top[src] = cmd
        if src.startswith("test_"):
            mm = re.match(r"run_check_result (.*) (\S+)$", cmd)
            if mm:
                base = f"integration: {src.removesuffix('.sh')} {top.get(src, func)}:{lineno}"
                counts[base] = counts.get(base, 0) + 1
                pending = ("rcr", base + (f" #{counts[base]}" if counts[base] > 1 else ""),
                           unquote(mm.group(1)), mm.group(2))
                continue
            mm = re.match(r"check_value (\S*) (\S*)$", cmd)
            if mm:
                cid = f"integration: {src.removesuffix('.sh')} {top.get(src, func)}:{lineno} check_value"
                ok = mm.group(1) == mm.group(2)
                out.append(check(cid, ok, "" if ok else f"expected {mm.group(2)}, got {mm.group(1)}"))
                continue
            mm = re.match(r"systemd_run_command (.*)$", cmd)
            if mm:
                last_sys = (src, int(lineno), unquote(mm.group(1)))
        if pending and func == "run_check_result":
            mm = re.match(r"result=(\d+)$", cmd)
            if mm:
                _, cid, command, expected = pending
                got = mm.group(1)
                ok = got == expected
                out.append(check(cid, ok, "" if ok else f"$ {command}\n    expected exit {expected}, got {got}"))
                pending = None
        if func == "systemd_run_command" and cmd.startswith("(( exit_flag++ ))") and last_sys:
            src_f, ln, command = last_sys
            k = (src_f, ln)
            i = used.get(k, 0)
            used[k] = i + 1
            errs = client_errors.get(k, [])
            err = errs[i] if i < len(errs) else ""
            setup_failures.setdefault(src_f.removesuffix(".sh"), []).append(
                f"$ {command}\n" + short(err, 6))
    # test_save_single_image_multiple_tags.sh has no check of its own: its verdict is the check.
    if log.exists():
        for line in log.read_text(errors="replace").splitlines():
            m = re.match(r"test (test_save_single_image_multiple_tags)\.sh:.*?(PASS|FAIL)", line)
            if m:
                ok = m.group(2) == "PASS"
                out.append(check(f"integration: {m.group(1)} (test verdict)", ok,
                                 "" if ok else "\n".join(setup_failures.get(m.group(1), []))))
    return out, setup_failures


def iso_log_verdicts(res: Path) -> None:
    """iso-NAME.log has no PASS line of test.sh: make one so integration_checks finds the verdict."""
    for rc in res.glob("iso-test_*.rc"):
        name = rc.stem.removeprefix("iso-")
        verdict = "PASS" if rc.read_text().strip() == "0" else "FAIL"
        (res / f"iso-{name}.verdict").write_text(f"test {name}.sh: {verdict}\n")


def unquote(s: str) -> str:
    s = s.strip()
    if len(s) >= 2 and s[0] == s[-1] == "'":
        s = s[1:-1].replace("'\\''", "'")
    return s


# ----------------------------------------------------------------------------------------- main
def client_results(res: Path) -> dict:
    base, note = base_checks(res)
    cover = cover_checks(res)
    integ, setup = integration_checks(res / "integration.trace", res / "integration.log",
                                      res / "integration.buildlog-failed")
    iso: list[dict] = []
    iso_setup: dict[str, list[str]] = {}
    iso_log_verdicts(res)
    for tr in sorted(res.glob("iso-test_*.trace")):
        name = tr.stem.removeprefix("iso-")
        c, s = integration_checks(tr, res / f"iso-{name}.verdict", res / f"iso-{name}.buildlog-failed")
        iso += c
        iso_setup.update(s)
    return {"base": base, "base_note": note, "cover": cover, "integration": integ,
            "integration_setup_failures": setup, "integration_isolated": iso,
            "integration_isolated_setup_failures": iso_setup}


def mark(ok: bool | None) -> str:
    return {True: "pass", False: "FAIL", None: "not run"}[ok]


def main() -> int:
    out = Path(sys.argv[1])
    clients = sys.argv[2:] or ["py", "go"]
    results = {}
    for c in clients:
        if (out / c).is_dir():
            results[c] = client_results(out / c)
            (out / c / "checks.json").write_text(json.dumps(results[c], indent=1))
    if not results:
        print("no results")
        return 1
    lines = ["# Original isula-build suites against our daemon", ""]
    order: list[str] = []
    table: dict[str, dict[str, dict]] = {}
    iso_table: dict[str, dict[str, dict]] = {}
    for c, r in results.items():
        for ch in r["base"] + r["cover"] + r["integration"]:
            if ch["id"] not in table:
                order.append(ch["id"])
            table.setdefault(ch["id"], {})[c] = ch
        for ch in r["integration_isolated"]:
            iso_table.setdefault(ch["id"], {})[c] = ch
    totals = {c: sum(1 for i in order if table[i].get(c, {}).get("ok")) for c in results}
    lines.append("checks: %d; passed: %s" % (len(order), ", ".join(f"{c} {n}" for c, n in totals.items())))
    for c, r in results.items():
        lines.append(f"- {c}: base {r['base_note']}")
    lines += ["", "| check | " + " | ".join(results) + " |", "|---|" + "---|" * len(results)]
    for i in order:
        lines.append(f"| {i} | " + " | ".join(mark(table[i].get(c, {}).get("ok")) for c in results) + " |")
    if iso_table:
        lines += ["", "## integration tests run one by one (fresh configuration each)", "",
                  "| check | " + " | ".join(results) + " |", "|---|" + "---|" * len(results)]
        for i, per in iso_table.items():
            lines.append(f"| {i} | " + " | ".join(mark(per.get(c, {}).get("ok")) for c in results) + " |")
    lines += ["", "## failures", ""]
    for i in order:
        for c in results:
            ch = table[i].get(c)
            if ch and ch["ok"] is False:
                lines += [f"### {i} [{c}]", "```", ch["reason"] or "(no detail)", "```"]
    for key, title in (("integration_setup_failures", "failed commands (systemd_run_command) in the integration suite"),
                       ("integration_isolated_setup_failures", "failed commands, integration tests run one by one")):
        any_ = False
        for c, r in results.items():
            for test, fails in r[key].items():
                if not any_:
                    lines += ["", f"## {title}", ""]
                    any_ = True
                lines += [f"### {test} [{c}]", "```", "\n".join(fails), "```"]
    for i, per in iso_table.items():
        for c, ch in per.items():
            if ch["ok"] is False:
                lines += [f"### alone: {i} [{c}]", "```", ch["reason"] or "(no detail)", "```"]
    report = "\n".join(lines) + "\n"
    (out / "report.md").write_text(report)
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
