"""Rebuilds expected/<case>.json from docker's BuildKit (needs a running dockerd).

Usage: python tests/builder/differential/regen_expected.py [--fresh] [CASE ...]
Without CASE names, every case. --fresh ignores the /var/tmp cache and builds again.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from contextlib import nullcontext
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from diffcases import EXPECTED_DIR, all_cases  # noqa: E402
from diffcompare import delta  # noqa: E402
from dockerside import CACHE_DIR, docker_result  # noqa: E402
from flatten import flatten_layer_tar  # noqa: E402
from urlserver import serve  # noqa: E402

REPO = Path(__file__).resolve().parents[3]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fresh", action="store_true", help="ignore the cache of docker results")
    parser.add_argument("cases", nargs="*")
    opts = parser.parse_args()
    cases = [c for c in all_cases() if not opts.cases or c.name in opts.cases]
    unknown = set(opts.cases) - {c.name for c in cases}
    if unknown:
        parser.error(f"no such case: {', '.join(sorted(unknown))}")
    if opts.fresh:
        for case in cases:
            for old in CACHE_DIR.glob(f"{case.name}-*.json"):
                old.unlink()
    EXPECTED_DIR.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="isb-diff-regen-") as tmp:
        busybox_tar = Path(tmp) / "busybox-rootfs.tar"
        subprocess.run([str(REPO / "scripts" / "busybox-rootfs.sh"), str(busybox_tar)], check=True)
        base = flatten_layer_tar(busybox_tar)
        failed = []
        for case in cases:
            server = serve(case.dir / "www") if case.url_server else nullcontext(None)
            try:
                with server as url_base:
                    image = docker_result(case, busybox_tar, url_base)
            except AssertionError as exc:  # a case docker refuses: report it, go on
                failed.append(case.name)
                print(f"{case.name}: FAILED\n{exc}", flush=True)
                continue
            case.expected_path.write_text(json.dumps(delta(base, image), indent=1, sort_keys=True) + "\n")
            print(f"{case.name}: {len(image.tree)} paths", flush=True)
    if failed:
        print(f"docker could not build: {' '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
