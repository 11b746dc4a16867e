#!/bin/bash
# One integration test of the original (tests/src/test_*.sh) on its own, framed as tests/test.sh
# integration frames the whole set: pre_integration (own run/data roots, daemon restarted through
# systemctl), the test, after_integration. Its buildlog-failed is copied to $2.
top_dir=$(git rev-parse --show-toplevel)
# shellcheck disable=SC1091
source "$top_dir"/tests/lib/integration_commonlib.sh
create_tmp_dir
pre_integration
bash "$1"
rc=$?
[ -f "$TMPDIR/buildlog-failed" ] && cp "$TMPDIR/buildlog-failed" "$2"
after_integration "$rc" >/dev/null
exit "$rc"
