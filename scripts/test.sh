#!/bin/sh
# The whole test suite, from a fresh Debian machine (as root): installs what is missing, starts
# dockerd for the interoperability tests, runs the type checker, then pytest. Extra arguments go to
# pytest.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
"$here/scripts/install-deps.sh"
"$here/scripts/start-dockerd.sh"
cd "$here"
python3 -m mypy   # configured in pyproject.toml ([tool.mypy]); pinned in the test extras
exec python3 -m pytest -q "$@"
