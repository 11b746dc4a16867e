#!/usr/bin/env python3
"""Re-derives docker_cases.json by building each case with the real docker (not run by pytest).

Usage: python3 tests/dockerfile/regen_docker_cases.py  (needs dockerd; makes and removes
images named isb-test-*).  Each case is a small Dockerfile on top of the busybox image made by
scripts/busybox-rootfs.sh and imported as isb-test-busybox:latest.  What docker did is recorded:
the image config fields the frontend decides (Labels, Env, Cmd, …), the build-arg warning, or
the fact that docker refused the Dockerfile.  The suite compares the frontend with this data
without needing docker.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
BASE = "isb-test-busybox:latest"
OUT = HERE / "docker_cases.json"
FIELDS = ("Labels", "Env", "Cmd", "Entrypoint", "ExposedPorts", "Volumes", "User", "WorkingDir",
          "StopSignal", "Healthcheck", "Shell", "OnBuild")

# (name, Dockerfile with {BASE} for the base image, build args, target)
CASES: list[tuple[str, str, dict[str, str], str | None]] = [
    ("env_pairs_quoted", 'FROM {BASE}\nENV A=x B="y z"\nLABEL a=$A b="$B"\n', {}, None),
    ("env_uses_values_from_before", "FROM {BASE}\nENV A=1\nENV A=2 B=$A C=${A}x\nLABEL a=$A b=$B c=$C\n", {}, None),
    ("env_old_form_spaces", "FROM {BASE}\nENV A x y  z\nLABEL a=\"$A\"\n", {}, None),
    ("env_old_form_quotes", "FROM {BASE}\nENV A \"x  y\" 'z'\nLABEL a=\"$A\"\n", {}, None),
    ("env_replaces_in_place", "FROM {BASE}\nENV A=1 B=2\nENV A=3\n", {}, None),
    ("modifiers_colon", "FROM {BASE}\nENV S=set E=\nLABEL a=${S:-d} b=${E:-d} c=${U:-d} d=${S:+alt} e=${E:+alt} f=${U:+alt}\n", {}, None),
    ("modifiers_no_colon", "FROM {BASE}\nENV S=set E=\nLABEL a=${S-d} b=${E-d} c=${U-d} d=${S+alt} e=${E+alt} f=${U+alt}\n", {}, None),
    ("modifier_nested", "FROM {BASE}\nENV A=v\nLABEL a=${U:-${A}x} b=\"${U:-'q w'}\" c=${A:+[$A]}\n", {}, None),
    ("single_quotes_literal", "FROM {BASE}\nENV A=v\nLABEL a='$A' b='x\\y' c='${A}'\n", {}, None),
    ("double_quote_escapes", "FROM {BASE}\nENV A=v\nLABEL a=\"x\\\"y\" b=\"x\\y\" c=\"x\\\\y\" d=\"\\$A\" e=\"$A\"\n", {}, None),
    ("unquoted_escapes", "FROM {BASE}\nENV A=v\nLABEL a=\\$A b=x\\y c=\\\"q\\\" d=a\\ b\n", {}, None),
    ("dollar_edge_cases", "FROM {BASE}\nENV A=v\nLABEL a=\"cost$\" b=\"$-x\" c=\"$1x\" d=\"${A}b$\" e=\"$/\" f=$\n", {}, None),
    ("name_chars", "FROM {BASE}\nENV A_1=u a=l\nLABEL a=$A_1x b=${A_1}x c=$a d=$A e=$A_1.z\n", {}, None),
    ("escape_backtick", "# escape=`\nFROM {BASE}\nENV A=v\nLABEL a=`$A b=c:\\path\\x c=\"`$A\" d=$A `\n  e=2\n", {}, None),
    ("directive_after_comment_ignored", "# hello\n# escape=`\nFROM {BASE}\nLABEL a=x\\y\n", {}, None),
    ("directive_spacing", "#   ESCAPE =  `  \nFROM {BASE}\nLABEL a=x\\y b=1 `\n c=2\n", {}, None),
    ("continuation_comments_blank", "FROM {BASE}\nLABEL a=1 \\\n# inner comment\n\n    b=2 \\\n  c=3\n", {}, None),
    ("continuation_trailing_space", "FROM {BASE}\nLABEL a=1 \\   \n b=2\n", {}, None),
    ("keyword_case", "from {BASE}\nlabel a=1\nEnV B=2\n", {}, None),
    ("label_keys_quoted", "FROM {BASE}\nLABEL \"com.a b\"=\"v 1\" c=2 'd'=\"$X\"\n", {}, None),
    ("label_old_form", "FROM {BASE}\nLABEL key some value  here\n", {}, None),
    ("label_equals_in_value", "FROM {BASE}\nLABEL a=b=c d==\n", {}, None),
    ("arg_default_and_scope", "ARG G=glob\nFROM {BASE}\nLABEL g=$G\nARG G\nARG L=loc\nLABEL g2=$G l=$L\n", {}, None),
    ("arg_build_arg_overrides", "ARG G=glob\nFROM {BASE}\nARG G\nARG L=loc\nLABEL g=$G l=$L\n", {"G": "bg", "L": "bl"}, None),
    ("arg_in_from", "ARG IMG={BASE}\nFROM $IMG\nLABEL img=\"$IMG\"\n", {}, None),
    ("arg_from_braces_default", "ARG TAG\nFROM isb-test-busybox:${TAG:-latest}\nLABEL t=x\n", {}, None),
    ("env_beats_arg", "FROM {BASE}\nARG X=a\nENV X=b\nLABEL x=$X\nARG Y=a\nENV Y=b\nARG Y=c\nLABEL y=$Y\n", {"X": "c"}, None),
    ("arg_several_per_line", "FROM {BASE}\nARG A=1 B=2\nLABEL a=$A b=$B\n", {}, None),
    ("arg_several_see_values_from_before", "FROM {BASE}\nARG A=0\nARG A=1 B=$A\nLABEL a=$A b=$B\n", {}, None),
    ("arg_without_value_unset", "FROM {BASE}\nARG U\nLABEL a=${U-unset} b=${U:-empty}\n", {}, None),
    ("unused_build_args", "ARG G=1\nFROM {BASE}\nARG S\nLABEL s=$S\n", {"S": "1", "G": "2", "NOPE": "3", "http_proxy": "h"}, None),
    ("expose_forms", "FROM {BASE}\nENV P=90\nEXPOSE 80 443/udp 8000-8002/tcp ${P}/TCP 53/sctp\n", {}, None),
    ("volume_forms", "FROM {BASE}\nENV V=/v\nVOLUME [\"/a\", \"$V\"]\nVOLUME /b /c $V/d\n", {}, None),
    ("cmd_exec_and_shell", "FROM {BASE}\nENV A=v\nCMD [\"echo\", \"$A\"]\n", {}, None),
    ("cmd_shell_form", "FROM {BASE}\nCMD echo $HOME  \"a b\"\n", {}, None),
    ("entrypoint_resets_cmd", "FROM {BASE}\nCMD [\"x\"]\nENTRYPOINT [\"/bin/sh\"]\n", {}, None),
    ("cmd_after_entrypoint", "FROM {BASE}\nENTRYPOINT /bin/echo hi\nCMD [\"x\"]\n", {}, None),
    ("shell_changes_shell_form", "FROM {BASE}\nSHELL [\"/bin/ash\", \"-e\", \"-c\"]\nCMD echo hi\nENTRYPOINT exec top\n", {}, None),
    ("json_not_array_is_shell", "FROM {BASE}\nCMD [\"a\", b]\n", {}, None),
    ("json_single_quotes_is_shell", "FROM {BASE}\nCMD ['a']\n", {}, None),
    ("healthcheck_cmd_opts", "FROM {BASE}\nHEALTHCHECK --interval=5s --timeout=3s --start-period=1m30s --retries=4 CMD wget -q -O- http://localhost/ || exit 1\n", {}, None),
    ("healthcheck_exec", "FROM {BASE}\nHEALTHCHECK CMD [\"/bin/true\", \"x\"]\n", {}, None),
    ("healthcheck_none", "FROM {BASE}\nHEALTHCHECK CMD true\nHEALTHCHECK NONE\n", {}, None),
    ("workdir_relative_env", "FROM {BASE}\nENV D=data\nWORKDIR /srv\nWORKDIR $D\nWORKDIR sub/../x\n", {}, None),
    ("user_env", "FROM {BASE}\nENV U=nobody G=nogroup\nUSER $U:${G}\n", {}, None),
    ("stopsignal_forms", "FROM {BASE}\nENV S=SIGKILL\nSTOPSIGNAL $S\n", {}, None),
    ("stopsignal_number", "FROM {BASE}\nSTOPSIGNAL 9\n", {}, None),
    ("onbuild_triggers", "FROM {BASE}\nONBUILD RUN echo $HOME\nonbuild   ADD . /app\nONBUILD ENV A=1\n", {}, None),
    ("multistage_target", "FROM {BASE} AS one\nLABEL s=one\nFROM {BASE} AS Two\nLABEL s=two\nFROM one\nLABEL t=three\n", {}, "two"),
    ("multistage_from_stage", "FROM {BASE} AS base\nENV A=1\nLABEL b=1\nFROM BASE\nLABEL a=$A\n", {}, None),
    ("multistage_copy_from_index", "FROM {BASE} AS a\nENV F=/etc/passwd\nFROM {BASE}\nCOPY --from=0 /etc/passwd /p\nLABEL ok=1\n", {}, None),
    ("copy_from_expanded", "FROM {BASE} AS src\nFROM {BASE}\nARG S=src\nCOPY --from=$S /etc/group /g\nLABEL ok=$S\n", {}, None),
    ("copy_chown_chmod", "FROM {BASE} AS a\nFROM {BASE}\nCOPY --from=a --chown=1:1 --chmod=0750 /etc/group /g\n", {}, None),
    ("maintainer", "FROM {BASE}\nMAINTAINER Jane Doe <jane@example.com>\n", {}, None),
    ("bom_and_crlf", "\ufeffFROM {BASE}\r\nLABEL a=1 \\\r\n  b=2\r\n", {}, None),
    ("builtin_proxy_arg_in_label", "FROM {BASE}\nLABEL p=x$http_proxy\n", {"http_proxy": "h"}, None),
    ("env_same_key_twice", "FROM {BASE}\nENV A=1 A=2 B=$A\nLABEL a=$A b=$B\n", {}, None),
    ("quoted_workdir_user", "FROM {BASE}\nWORKDIR \"/a b\"\nUSER \"x y\"\n", {}, None),
    ("continuation_inside_quotes", "FROM {BASE}\nLABEL a=\"x \\\n  y\" b=c\\ d\n", {}, None),
    ("tabs_as_separators", "FROM\t{BASE}\nLABEL\ta=1\tb=2\nENV\tA\tx\ty\n", {}, None),
    ("env_old_form_escaped_dollar", "FROM {BASE}\nENV A=v\nENV B \\$A and $A\n", {}, None),
    # Refused Dockerfiles.
    ("err_unknown_instruction", "FROM {BASE}\nFORM x\n", {}, None),
    ("err_no_from", "ARG A=1\n", {}, None),
    ("err_instruction_before_from", "LABEL a=1\nFROM {BASE}\n", {}, None),
    ("err_from_two_args", "FROM {BASE} x\n", {}, None),
    ("err_bad_escape_directive", "# escape=x\nFROM {BASE}\n", {}, None),
    ("err_duplicate_directive", "# escape=`\n# escape=\\\nFROM {BASE}\n", {}, None),
    ("err_unterminated_double_quote", "FROM {BASE}\nLABEL a=\"x\n", {}, None),
    ("err_unterminated_single_quote", "FROM {BASE}\nENV a='x\n", {}, None),
    ("err_missing_brace", "FROM {BASE}\nLABEL a=${A\n", {}, None),
    ("err_bad_substitution", "FROM {BASE}\nLABEL a=${}\n", {}, None),
    ("err_bad_modifier", "FROM {BASE}\nLABEL a=${A:=x}\n", {}, None),
    ("err_env_one_word", "FROM {BASE}\nENV A\n", {}, None),
    ("err_env_missing_equals", "FROM {BASE}\nENV A=1 B\n", {}, None),
    ("err_label_empty", "FROM {BASE}\nLABEL\n", {}, None),
    ("err_onbuild_onbuild", "FROM {BASE}\nONBUILD ONBUILD RUN x\n", {}, None),
    ("err_onbuild_from", "FROM {BASE}\nONBUILD FROM x\n", {}, None),
    ("err_onbuild_maintainer", "FROM {BASE}\nONBUILD MAINTAINER x\n", {}, None),
    ("err_healthcheck_interval_small", "FROM {BASE}\nHEALTHCHECK --interval=1ns CMD true\n", {}, None),
    ("err_healthcheck_bad_type", "FROM {BASE}\nHEALTHCHECK RUN true\n", {}, None),
    ("err_healthcheck_none_args", "FROM {BASE}\nHEALTHCHECK NONE x\n", {}, None),
    ("err_healthcheck_negative_retries", "FROM {BASE}\nHEALTHCHECK --retries=-1 CMD true\n", {}, None),
    ("err_copy_one_arg", "FROM {BASE}\nCOPY a\n", {}, None),
    ("err_copy_unknown_flag", "FROM {BASE}\nCOPY --foo=x a b\n", {}, None),
    ("err_copy_from_missing_value", "FROM {BASE}\nCOPY --from a b\n", {}, None),
    ("err_shell_not_json", "FROM {BASE}\nSHELL /bin/sh -c\n", {}, None),
    ("err_json_non_string", "FROM {BASE}\nCMD [\"a\", 1]\n", {}, None),
    ("err_cmd_flag_like", "FROM {BASE}\nCMD --version\n", {}, None),
    ("err_run_empty", "FROM {BASE}\nRUN\n", {}, None),
    ("err_expose_bad", "FROM {BASE}\nEXPOSE abc\n", {}, None),
    ("err_expose_bad_proto", "FROM {BASE}\nEXPOSE 80/xyz\n", {}, None),
    ("err_stopsignal_bad", "FROM {BASE}\nSTOPSIGNAL NOPE\n", {}, None),
    ("err_user_empty", "FROM {BASE}\nUSER\n", {}, None),
    ("err_workdir_empty", "FROM {BASE}\nWORKDIR\n", {}, None),
    ("err_volume_empty_string", "FROM {BASE}\nVOLUME [\"\"]\n", {}, None),
    ("err_duplicate_stage", "FROM {BASE} AS a\nFROM {BASE} AS A\n", {}, None),
    ("err_bad_stage_name", "FROM {BASE} AS a/b\n", {}, None),
    ("err_missing_target", "FROM {BASE} AS a\n", {}, "b"),
    ("err_empty", "\n# only a comment\n\n", {}, None),
]


def run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, **kw)  # type: ignore[call-overload]


def ensure_base() -> None:
    if run(["docker", "image", "inspect", BASE]).returncode == 0:
        return
    with tempfile.TemporaryDirectory() as tmp:
        tar = Path(tmp) / "bb.tar"
        subprocess.run([str(REPO / "scripts" / "busybox-rootfs.sh"), str(tar)], check=True)
        subprocess.run(["docker", "import", str(tar), BASE], check=True, capture_output=True)


def build(name: str, text: str, build_args: dict[str, str], target: str | None) -> dict[str, object]:
    tag = "isb-test-case:latest"
    with tempfile.TemporaryDirectory() as ctx:
        Path(ctx, "Dockerfile").write_bytes(text.encode())
        cmd = ["docker", "build", "--network", "host", "--force-rm", "-t", tag]
        for k, v in build_args.items():
            cmd += ["--build-arg", f"{k}={v}"]
        if target:
            cmd += ["--target", target]
        p = run(cmd + [ctx], env={"DOCKER_BUILDKIT": "0", "PATH": "/usr/bin:/bin:/usr/sbin:/sbin"})
    output = p.stdout + p.stderr
    if p.returncode != 0:
        return {"ok": False, "docker_error": output.strip().splitlines()[-1] if output.strip() else ""}
    inspect = json.loads(run(["docker", "image", "inspect", tag], check=True).stdout)[0]
    run(["docker", "rmi", "-f", tag])
    config = inspect["Config"]
    warnings = [line.strip() for line in output.splitlines() if "build-args" in line and "consumed" in line]
    return {"ok": True, "config": {k: config.get(k) for k in FIELDS}, "warnings": warnings}


def main() -> int:
    ensure_base()
    version = run(["docker", "version", "--format", "{{.Server.Version}}"], check=True).stdout.strip()
    cases = []
    for name, template, build_args, target in CASES:
        text = template.replace("{BASE}", BASE)
        result = build(name, text, build_args, target)
        print(f"{name}: {'ok' if result['ok'] else 'refused'}", file=sys.stderr)
        cases.append({"name": name, "dockerfile": text, "build_args": build_args, "target": target, **result})
    OUT.write_text(json.dumps({
        "about": ("Expected results taken from the real docker: each case was built with "
                  f"`DOCKER_BUILDKIT=0 docker build` against dockerd {version} (its classic builder, which "
                  "uses BuildKit's Dockerfile parser and shell lexer; this machine has no buildx) on "
                  f"{BASE} made by scripts/busybox-rootfs.sh. Regenerate with "
                  "tests/dockerfile/regen_docker_cases.py."),
        "docker_version": version,
        "base": BASE,
        "cases": cases,
    }, indent=1, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
