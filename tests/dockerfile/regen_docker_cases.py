#!/usr/bin/env python3
"""Re-derives docker_cases.json by building each case with docker's BuildKit (not run by pytest).

Usage: python3 tests/dockerfile/regen_docker_cases.py  (needs dockerd; makes and removes
images named isb-test-*; builds with `DOCKER_BUILDKIT=1 /usr/bin/docker build`).  Each case is a
small Dockerfile on top of the busybox image made by scripts/busybox-rootfs.sh and imported as
isb-test-busybox:latest.  What BuildKit did is recorded: the image config fields the frontend
decides (Labels, Env, Cmd, …), any build-arg warning, or the fact that it refused the
Dockerfile.  The suite compares the frontend with this data without needing docker.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
BASE = "isb-test-busybox:latest"
OUT = HERE / "docker_cases.json"
# BuildKit through Debian's docker 20.10 CLI, which has it built in; the `docker` that may come
# first on PATH (a newer CLI without buildx) cannot run BuildKit builds.
DOCKER = "/usr/bin/docker"
BUILD_ENV = {"DOCKER_BUILDKIT": "1", "PATH": "/usr/bin:/bin:/usr/sbin:/sbin"}
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
    # Heredocs: RUN's body goes to the shell (which expands it unless the delimiter is quoted);
    # COPY's body is expanded by the frontend unless the delimiter is quoted.
    ("heredoc_run_script", "FROM {BASE}\nENV A=v\nRUN <<EOF\necho $A > /out\nEOF\nLABEL ok=1\n", {}, None),
    ("heredoc_run_quoted_delimiter", "FROM {BASE}\nENV A=v\nRUN cat <<EOF >/a && cat <<'EOT' >/b\n$A\nEOF\n$A\nEOT\nLABEL ok=1\n", {}, None),
    ("heredoc_copy_expand_vs_quoted", "FROM {BASE}\nARG A=v\nCOPY <<EOF /a\n$A\nEOF\nCOPY <<\"EOF\" /b\n$A\nEOF\nLABEL a=$A\n", {}, None),
    ("env_multi_pair_quotes", "FROM {BASE}\nENV A=\"a b\" B='c $A' C=d\\ e D=\"x\\\"y\" E=$A-1 F=\"$A\"'$A'\n", {}, None),
    ("arg_before_from_two_args", "ARG REPO=isb-test-busybox\nARG TAG\nFROM ${REPO}:${TAG} AS b\nARG TAG\nLABEL t=$TAG r=x$REPO\n", {"TAG": "latest"}, None),
    ("escape_backtick_paths_and_json", "# escape=`\nFROM {BASE}\nENV P=c:\\dir\\x Q=`$P\nLABEL p=$P q=$Q r=\"`\"in`\"\" `\n  s=\\n\nCMD [\"a\\\\b\", \"c\\u0041\"]\n", {}, None),
    ("expose_ranges", "FROM {BASE}\nENV LO=7000\nEXPOSE ${LO}-7002 8080-8081/udp 9000-9000/tcp 100/UDP\n", {}, None),
    ("healthcheck_all_options_exec", "FROM {BASE}\nHEALTHCHECK --interval=1m --timeout=10s --start-period=500ms --retries=2 CMD [\"/bin/sh\", \"-c\", \"true\"]\n", {}, None),
    ("healthcheck_shell_ignores_shell", "FROM {BASE}\nSHELL [\"/bin/ash\", \"-c\"]\nHEALTHCHECK --retries=1 CMD   true  &&  echo \"a b\"\n", {}, None),
    ("healthcheck_start_interval", "FROM {BASE}\nHEALTHCHECK --start-interval=2s CMD true\n", {}, None),
    ("onbuild_recorded_form", "FROM {BASE}\nENV A=v\nONBUILD   run   echo  \"$A\"   &&  true\nONBUILD COPY --chown=1:1 a \\\n  b\nONBUILD label x=$A\n", {}, None),
    ("shell_sequence", "FROM {BASE}\nSHELL [\"/bin/sh\", \"-ec\"]\nCMD echo a\nSHELL [\"/bin/ash\",\"-c\"]\nENTRYPOINT echo  b\nSHELL [\"/bin/sh\", \"-c\"]\n", {}, None),
    ("stopsignal_rtmin", "FROM {BASE}\nSTOPSIGNAL SIGRTMIN+3\n", {}, None),
    ("stopsignal_without_sig", "FROM {BASE}\nSTOPSIGNAL TERM\n", {}, None),
    # Where BuildKit and the classic builder part ways.
    ("arg_redeclared_without_value_keeps_value", "FROM {BASE}\nARG Y=1\nARG Y\nLABEL y=$Y\n", {}, None),
    ("arg_default_sees_env", "FROM {BASE}\nENV E=e\nARG A=$E-x\nLABEL a=$A\n", {}, None),
    ("arg_overrides_base_env_in_expansion", "FROM {BASE}\nARG PATH=/x\nLABEL p=$PATH\nENV Q=$PATH\n", {}, None),
    ("arg_then_env_then_arg_without_value", "FROM {BASE}\nARG Y=a\nENV Y=b\nARG Y\nLABEL y=$Y\n", {"Y": "c"}, None),
    ("builtin_proxy_arg_declared", "FROM {BASE}\nARG http_proxy\nLABEL p=x$http_proxy\n", {"http_proxy": "h"}, None),
    ("duplicate_stage_names", "FROM {BASE} AS a\nLABEL s=first\nFROM {BASE} AS A\nLABEL s=second\nFROM a\nLABEL t=1\n", {}, None),
    ("duplicate_stage_names_target", "FROM {BASE} AS a\nLABEL s=first\nFROM {BASE} AS a\nLABEL s=second\nFROM {BASE}\n", {}, "A"),
    ("multistage_from_stage_lowercase", "FROM {BASE} AS Base\nENV A=1\nFROM base\nLABEL a=$A\n", {}, None),
    ("run_without_command", "FROM {BASE}\nRUN\nLABEL ok=1\n", {}, None),
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
    ("err_expose_bad", "FROM {BASE}\nEXPOSE abc\n", {}, None),
    ("err_expose_bad_proto", "FROM {BASE}\nEXPOSE 80/xyz\n", {}, None),
    ("err_stopsignal_bad", "FROM {BASE}\nSTOPSIGNAL NOPE\n", {}, None),
    ("err_user_empty", "FROM {BASE}\nUSER\n", {}, None),
    ("err_workdir_empty", "FROM {BASE}\nWORKDIR\n", {}, None),
    ("err_volume_empty_string", "FROM {BASE}\nVOLUME [\"\"]\n", {}, None),
    ("err_bad_stage_name", "FROM {BASE} AS a/b\n", {}, None),
    ("err_missing_target", "FROM {BASE} AS a\n", {}, "b"),
    ("err_empty", "\n# only a comment\n\n", {}, None),
]

# Never sent to docker: dockerd 20.10.24 itself dies on these (the client sees "unexpected EOF" and
# the daemon restarts), which would break every other build running on this machine.
KILLS_DOCKERD = {"err_no_from": "not sent: dockerd 20.10.24 dies on a Dockerfile without FROM (unexpected EOF)"}


def run(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def ensure_base() -> None:
    if run([DOCKER, "image", "inspect", BASE]).returncode == 0:
        return
    with tempfile.TemporaryDirectory() as tmp:
        tar = Path(tmp) / "bb.tar"
        subprocess.run([str(REPO / "scripts" / "busybox-rootfs.sh"), str(tar)], check=True)
        subprocess.run([DOCKER, "import", str(tar), BASE], check=True, capture_output=True)


def last_message(output: str) -> str:
    """BuildKit's error: the last line that is not progress output ("#3 [stage 1/2] …")."""
    lines = [line.strip() for line in output.splitlines() if line.strip() and not line.startswith("#")]
    return lines[-1] if lines else ""


def build(text: str, build_args: dict[str, str], target: str | None) -> dict[str, object]:
    tag = "isb-test-case:latest"
    with tempfile.TemporaryDirectory() as ctx:
        Path(ctx, "Dockerfile").write_bytes(text.encode())
        cmd = [DOCKER, "build", "--network", "host", "--progress", "plain", "-t", tag]
        for k, v in build_args.items():
            cmd += ["--build-arg", f"{k}={v}"]
        if target:
            cmd += ["--target", target]
        p = run(cmd + [ctx], env=BUILD_ENV)
    output = p.stdout + p.stderr
    if p.returncode != 0:
        return {"ok": False, "docker_error": last_message(output)}
    inspect = json.loads(run([DOCKER, "image", "inspect", tag], check=True).stdout)[0]
    run([DOCKER, "rmi", "-f", tag])
    config = inspect["Config"]
    # The classic builder printed "[Warning] One or more build-args [X] were not consumed"; any
    # line of that kind BuildKit prints is kept, so the data shows whether it warns at all.
    warnings = [line.strip() for line in output.splitlines()
                if "build-arg" in line.lower() and ("consumed" in line or "warn" in line.lower())]
    return {"ok": True, "config": {k: config.get(k) for k in FIELDS}, "warnings": warnings}


def main() -> int:
    ensure_base()
    versions = run([DOCKER, "version", "--format", "{{.Client.Version}} {{.Server.Version}}"], check=True)
    client, server = versions.stdout.split()
    cases = []
    for name, template, build_args, target in CASES:
        text = template.replace("{BASE}", BASE)
        result = ({"ok": False, "docker_error": KILLS_DOCKERD[name]} if name in KILLS_DOCKERD
                  else build(text, build_args, target))
        print(f"{name}: {'ok' if result['ok'] else 'refused'}", file=sys.stderr)
        cases.append({"name": name, "dockerfile": text, "build_args": build_args, "target": target, **result})
    OUT.write_text(json.dumps({
        "about": ("Expected results taken from the real docker: each case was built with "
                  f"`DOCKER_BUILDKIT=1 {DOCKER} build` (BuildKit, the Dockerfile frontend built into "
                  f"dockerd {server}, no `# syntax` image) with docker CLI {client} on {BASE} made by "
                  "scripts/busybox-rootfs.sh. Cases whose docker_error starts with \"not sent\" were not built: "
                  "they kill that dockerd. Regenerate with tests/dockerfile/regen_docker_cases.py."),
        "builder": "buildkit",
        "docker_version": server,
        "docker_client_version": client,
        "base": BASE,
        "cases": cases,
    }, indent=1, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
