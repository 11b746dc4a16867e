#!/bin/bash
# The base suite's checks (tests/src/isula_build_base_command.sh) one by one: the original's own
# functions from tests/lib/base_commonlib.sh, with show_and_run_command wrapped so that a failing
# command is recorded instead of ending the run. The daemon is already running (systemctl stand-in).
# Writes one line per command to $RESULTS: CHECK<TAB>group<TAB>rc<TAB>command, then the client's
# output of a failing command, indented.
top_dir=$(git rev-parse --show-toplevel)
# shellcheck disable=SC1091
source "$top_dir"/tests/lib/base_commonlib.sh
create_tmp_dir
pidofbuilder=""   # a failing check must not kill the daemon here
eval "orig_$(declare -f show_and_run_command)"
: >"$RESULTS"

show_and_run_command() {
    local label="$1"
    [ $# -eq 2 ] && label="$1 :: $2"
    (orig_show_and_run_command "$@") >"$TMPDIR/out" 2>&1
    local rc=$?
    printf 'CHECK\t%s\t%s\t%s\n' "$group" "$rc" "$label" >>"$RESULTS"
    if [ "$rc" -ne 0 ]; then
        sed 's/^/    | /' "$TMPDIR/buildlog-client" >>"$RESULTS"
    fi
    return 0
}

# The dockerfiles of test_isula_build_output_with_different_dockerfiles.
for image_name in build-from-scratch add-chown-basic multi-files-env multi-stage-builds; do
    group="Outputs with dockerfile $image_name"
    test_isula_build_output "$image_name" "$top_dir/tests/data/$image_name"
done

group="base command"
test_isula_build_base_command build-from-scratch "$top_dir"/tests/data/build-from-scratch

isula-build ctr-img rm -p >/dev/null 2>&1
rm -rf "$TMPDIR"
