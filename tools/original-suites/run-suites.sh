#!/bin/bash
# Runs the original isula-build's own shell suites (tests/ of openeuler-mirror/isula-build, checked
# out at $ORIG_DIR/isula-build, default /work/orig) unchanged against OUR daemon, once with our Python client and once
# with the original Go client, and reports every check's pass/fail.
#
# Usage: run-suites.sh [SRC]          SRC: tree whose isula_build package runs (default: this checkout)
# Environment:
#   CLIENTS="py go"                    which clients to run (py = our client from SRC, go = $ORIG_DIR/bin/isula-build-go)
#   SUITES="base cover integration"    which suites
#   BASE_CONTINUE=auto|always|never    also run the base checks one by one (no stop at the first failure);
#                                      auto = only when the unchanged base suite fails
#   INTEGRATION_ISOLATED=auto|always|never  also run each test_*.sh alone (fresh configuration, own
#                                      pre_integration/after_integration), so that one test's failure
#                                      (e.g. a daemon that no longer starts) does not fail the next;
#                                      auto = only when a test of the unchanged integration suite fails
#   OUT=$ORIG_DIR/results               where logs and the report go (OUT/<client>/..., OUT/report.md)
#   EXPERIMENTAL=1|0                   1: add `experimental = true` to the original's configuration.toml.
#                                      tests/test.sh exports ISULABUILD_CLI_EXPERIMENTAL=enabled, so both
#                                      clients send format "oci" for every build without --format; the
#                                      original daemon takes it without experimental mode, ours refuses it.
#
# Each client run happens in a private mount+network namespace, so the suites' fixed paths are private:
#   /etc       overlay (their edits of /etc/isula-build/*.toml, the isula group, /etc/hosts stay inside)
#   /var/lib   bind of SANDBOX/varlib      /run (= /var/run)  bind of SANDBOX/run (+ the host's docker.sock)
#   /tmp       bind of SANDBOX/tmp         network: own loopback only
# Stand-ins: `systemctl` (isula-build.service: start/stop/restart/status, Type=notify-like wait for
# "is listening on"; `status docker` is active when dockerd answers; isulad is absent), `journalctl -u
# isula-build --since T` (the daemon's output, time-stamped), `isula-builder` (our daemon from SRC,
# started with no flags as the unit's ExecStart=/usr/bin/isula-builder), `isula-build` (the client).
# /etc/isula-build holds the original's own configuration.toml, storage.toml, registries.toml and
# policy.json (cmd/daemon/config/), as installed by its RPM.
# hub.oepkgs.net (the suites' base image hub.oepkgs.net/library/busybox:latest) is a local
# docker-registry on 127.0.0.1:443 with a CA in /etc/isula-build/certs.d/hub.oepkgs.net/; the image is
# made from busybox-static (SRC/scripts/busybox-rootfs.sh), imported into the default store, and pushed
# there with skopeo, so stores with other data roots pull it on FROM / ctr-img pull.
set -u

# ORIG_DIR holds the fetched original (isula-build/), the Go client (bin/), results and sandboxes.
HERE=${ORIG_DIR:-/work/orig}
TOOLS=$(cd "$(dirname "$0")" && pwd)
ORIG=$HERE/isula-build
GO_CLIENT=$HERE/bin/isula-build-go

if [ "${1:-}" = "--inner" ]; then
    shift
    INNER=1
else
    INNER=0
fi

SRC=$(cd "${1:-$TOOLS/../..}" && pwd) || { echo "no such tree: ${1:-}" >&2; exit 2; }
[ -d "$SRC/isula_build" ] || { echo "$SRC has no isula_build package" >&2; exit 2; }
CLIENTS=${CLIENTS:-py go}
SUITES=${SUITES:-base cover integration}
BASE_CONTINUE=${BASE_CONTINUE:-auto}
EXPERIMENTAL=${EXPERIMENTAL:-1}
INTEGRATION_ISOLATED=${INTEGRATION_ISOLATED:-auto}
OUT=${OUT:-$HERE/results}

if [ "$INNER" = 0 ]; then
    [ "$(id -u)" = 0 ] || { echo "run as root (mount namespaces)" >&2; exit 2; }
    [ -d "$ORIG/tests/src" ] || { echo "$ORIG/tests missing: check out the original first" >&2; exit 2; }
    git -C "$ORIG" rev-parse --show-toplevel >/dev/null 2>&1 || git -C "$ORIG" init -q
    mkdir -p "$OUT"
    for client in $CLIENTS; do
        case $client in
        py) ;;
        go) [ -x "$GO_CLIENT" ] || { echo "$GO_CLIENT missing" >&2; exit 2; } ;;
        *) echo "unknown client $client" >&2; exit 2 ;;
        esac
        echo "=== client $client (daemon from $SRC)"
        rm -rf "${OUT:?}/$client"
        mkdir -p "$OUT/$client"
        env -u ISULABUILD_HOST -u ISULABUILD_CONFIG_DIR -u SHELLOPTS -u BASH_ENV \
            CLIENT="$client" SUITES="$SUITES" BASE_CONTINUE="$BASE_CONTINUE" OUT="$OUT" EXPERIMENTAL="$EXPERIMENTAL" INTEGRATION_ISOLATED="$INTEGRATION_ISOLATED" \
            unshare -m -n --propagation private "$0" --inner "$SRC"
        echo "=== client $client: exit $?"
    done
    python3 "$TOOLS/harness/report.py" "$OUT" $CLIENTS
    exit 0
fi

# ----------------------------------------------------------------------------- inside the namespace
RES=$OUT/$CLIENT
SB=$HERE/sandbox/$CLIENT
log() { echo "[$(date '+%H:%M:%S')] $*"; }

# Leftovers of an earlier run (its namespace is gone, so nothing is mounted there any more).
rm -rf "$SB"
mkdir -p "$SB"/{etc-upper,etc-work,varlib,run,tmp,hostrun,bin,state,registry}
chmod 1777 "$SB/tmp"

ip link set lo up
mount --bind /run "$SB/hostrun"
mount --bind "$SB/run" /run
mkdir -p /run/lock
if [ -S "$SB/hostrun/docker.sock" ]; then
    touch /run/docker.sock
    mount --bind "$SB/hostrun/docker.sock" /run/docker.sock
fi
mount -t overlay overlay -o "lowerdir=/etc,upperdir=$SB/etc-upper,workdir=$SB/etc-work" /etc
mount --bind "$SB/varlib" /var/lib
mount --bind "$SB/tmp" /tmp
cleanup_ns() {
    # Ends only what this run started (pids recorded by the stand-ins).
    "$SB/bin/systemctl" stop isula-build >/dev/null 2>&1
    for f in "$SB"/state/builder-pids "$SB"/state/registry.pid; do
        [ -f "$f" ] || continue
        while read -r pid; do
            [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && kill -TERM "$pid" 2>/dev/null
        done <"$f"
    done
}
trap cleanup_ns EXIT

getent group isula >/dev/null || groupadd -r isula
printf '127.0.0.1\thub.oepkgs.net\n127.0.0.1\tlocalhost\n' >/etc/hosts

# The original's configuration files, as its package installs them.
mkdir -p /etc/isula-build
for f in configuration.toml storage.toml registries.toml policy.json; do
    install -m 0600 "$ORIG/cmd/daemon/config/$f" /etc/isula-build/$f
done
[ "$EXPERIMENTAL" = 1 ] && echo "experimental = true" >>/etc/isula-build/configuration.toml

# A registry standing in for hub.oepkgs.net.
certs=/etc/isula-build/certs.d/hub.oepkgs.net
mkdir -p "$certs" "$SB/pki"
(
    cd "$SB/pki" || exit 1
    openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=harness CA" \
        -keyout ca.key -out ca.crt >/dev/null 2>&1
    openssl req -newkey rsa:2048 -nodes -subj "/CN=hub.oepkgs.net" -keyout srv.key -out srv.csr >/dev/null 2>&1
    printf 'subjectAltName=DNS:hub.oepkgs.net\nbasicConstraints=CA:FALSE\n' >ext.cnf
    openssl x509 -req -in srv.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 \
        -extfile ext.cnf -out srv.crt >/dev/null 2>&1
) || { echo "openssl failed" >&2; exit 1; }
cp "$SB/pki/ca.crt" "$certs/ca.crt"
cat >"$SB/registry.yml" <<EOF
version: 0.1
log: {level: warn}
storage: {filesystem: {rootdirectory: $SB/registry}, delete: {enabled: true}}
http: {addr: "127.0.0.1:443", tls: {certificate: $SB/pki/srv.crt, key: $SB/pki/srv.key}}
EOF
docker-registry serve "$SB/registry.yml" >"$RES/registry.log" 2>&1 &
echo $! >"$SB/state/registry.pid"
mkdir -p "$SB/pristine-config"
cp -a /etc/isula-build/. "$SB/pristine-config/"

# ----------------------------------------------------------------------------- stand-ins on PATH
B=$SB/bin
PY=$(python3 -c 'import sys; print(sys.executable)')   # the interpreter itself, not a pyenv shim
cat >"$B/isula-builder" <<EOF
#!/bin/sh
# OUR daemon from $SRC, as /usr/bin/isula-builder.
echo \$\$ >>"$SB/state/builder-pids"
PYTHONPATH="$SRC" exec "$PY" -m isula_build.daemon.main "\$@"
EOF
if [ "$CLIENT" = py ]; then
    cat >"$B/isula-build" <<EOF
#!/bin/sh
PYTHONPATH="$SRC" exec "$PY" -m isula_build.cli.main "\$@"
EOF
else
    printf '#!/bin/sh\nexec %s "$@"\n' "$GO_CLIENT" >"$B/isula-build"
fi
cat >"$B/setup-client" <<EOF
#!/bin/sh
unset ISULABUILD_CLI_EXPERIMENTAL
PYTHONPATH="$SRC" exec "$PY" -m isula_build.cli.main "\$@"
EOF
cat >"$SB/state/stamp.py" <<'EOF'
import sys, time
pid = sys.argv[1] if len(sys.argv) > 1 else "?"
for line in sys.stdin:
    sys.stdout.write(time.strftime("%Y-%m-%d %H:%M:%S") + f" isula-builder[{pid}]: " + line)
    sys.stdout.flush()
EOF
cat >"$B/systemctl" <<EOF
#!/bin/sh
# Stand-in for systemd's systemctl, for the units the suites name.
S="$SB/state"
J="$RES/journal.log"
EOF
echo "PY=$PY" >>"$B/systemctl"
cat >>"$B/systemctl" <<'EOF'
action=""; unit=""
for a in "$@"; do
    case $a in
    -*) ;;
    *) if [ -z "$action" ]; then action=$a; elif [ -z "$unit" ]; then unit=${a%.service}; fi ;;
    esac
done
echo "$(date '+%F %T') systemctl $*" >>"$S/systemctl.log"
running() { [ -f "$S/pid" ] && kill -0 "$(cat "$S/pid")" 2>/dev/null; }
stop() {
    running || { rm -f "$S/pid"; return 0; }
    pid=$(cat "$S/pid"); kill -TERM "$pid"
    i=0
    while kill -0 "$pid" 2>/dev/null && [ $i -lt 200 ]; do sleep 0.1; i=$((i + 1)); done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    rm -f "$S/pid"
}
start() {
    running && return 0
    rm -f "$S/fifo"; mkfifo "$S/fifo"
    mark=$(wc -l <"$J" 2>/dev/null || echo 0)
    (unset NOTIFY_SOCKET; exec isula-builder >"$S/fifo" 2>&1 </dev/null) &
    pid=$!
    echo "$pid" >"$S/pid"
    "$PY" -u "$S/stamp.py" "$pid" <"$S/fifo" >>"$J" 2>&1 &
    i=0
    while [ $i -lt 300 ]; do
        if tail -n +"$((mark + 1))" "$J" 2>/dev/null | grep -q "is listening on"; then return 0; fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1; i=$((i + 1))
    done
    echo "Job for isula-build.service failed because the control process exited with error code." >&2
    echo "See \"systemctl status isula-build.service\" and \"journalctl -xe\" for details." >&2
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    rm -f "$S/pid"
    return 1
}
case $unit in
isula-build)
    case $action in
    start) start ;;
    stop) stop ;;
    restart) stop; start ;;
    status | is-active)
        if running; then echo "active (running)"; exit 0; fi
        echo "inactive (dead)"; exit 3 ;;
    daemon-reload | enable | disable) exit 0 ;;
    *) echo "systemctl stand-in: unsupported action $action" >&2; exit 1 ;;
    esac ;;
docker)
    case $action in
    status | is-active) docker version >/dev/null 2>&1 && exit 0; exit 3 ;;
    *) echo "systemctl stand-in: docker is not managed here" >&2; exit 1 ;;
    esac ;;
*)
    echo "Unit $unit.service could not be found." >&2
    exit 4 ;;
esac
EOF
cat >"$B/journalctl" <<EOF
#!/bin/sh
# Stand-in for journalctl -u isula-build [--since "YYYY-MM-DD HH:MM:SS"]: the daemon's output.
J="$RES/journal.log"
EOF
cat >>"$B/journalctl" <<'EOF'
since=""
while [ $# -gt 0 ]; do
    case $1 in
    --since) since=$2; shift ;;
    --since=*) since=${1#--since=} ;;
    esac
    shift
done
[ -f "$J" ] || exit 0
awk -v s="$since" 's == "" || substr($0, 1, 19) >= s' "$J"
EOF
chmod +x "$B"/*
: >"$RES/journal.log"
export PATH="$B:$PATH"
export ISULABUILD_CLI_EXPERIMENTAL=enabled   # as tests/test.sh does

# ----------------------------------------------------------------------------- base image
# busybox-static's root filesystem (SRC/scripts/busybox-rootfs.sh) with the users and groups of the
# busybox image on Docker Hub (which hub.oepkgs.net mirrors): add-chown-basic chowns to root:bin and
# 0:mail.
mkbase() {
    local out=$1 root
    root=$(mktemp -d)
    "$SRC/scripts/busybox-rootfs.sh" "$out.tmp" && tar -C "$root" -xf "$out.tmp" || return 1
    cat >"$root/etc/passwd" <<'EOT'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
sync:x:4:100:sync:/bin:/bin/sync
mail:x:8:8:mail:/var/spool/mail:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
operator:x:37:37:Operator:/var:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
EOT
    cat >"$root/etc/group" <<'EOT'
root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
lp:x:7:
mail:x:8:
kmem:x:9:
wheel:x:10:root
cdrom:x:11:
dialout:x:18:
floppy:x:19:
video:x:28:
audio:x:29:
tape:x:32:
www-data:x:33:
operator:x:37:
utmp:x:43:
plugdev:x:46:
staff:x:50:
lock:x:54:
netdev:x:82:
users:x:100:
nogroup:x:65534:
EOT
    tar --sort=name --mtime='2020-01-01 00:00:00' --owner=0 --group=0 --numeric-owner -C "$root" -cf "$out" . || return 1
    rm -rf "$root" "$out.tmp"
}
log "setup: daemon, base image hub.oepkgs.net/library/busybox:latest"
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/443) 2>/dev/null && break; sleep 0.1; done
systemctl start isula-build || { echo "setup: daemon did not start" >&2; tail -20 "$RES/journal.log"; exit 1; }
mkbase "$SB/busybox.tar" &&
    setup-client ctr-img import "$SB/busybox.tar" hub.oepkgs.net/library/busybox:latest >"$RES/setup.log" 2>&1 &&
    setup-client ctr-img save hub.oepkgs.net/library/busybox:latest -o "$SB/busybox-image.tar" >>"$RES/setup.log" 2>&1 &&
    skopeo copy --quiet --dest-cert-dir "$certs" docker-archive:"$SB/busybox-image.tar" \
        docker://hub.oepkgs.net/library/busybox:latest >>"$RES/setup.log" 2>&1 ||
    { echo "setup of the base image failed:" >&2; cat "$RES/setup.log" >&2; exit 1; }
rm -f "$SB/busybox.tar" "$SB/busybox-image.tar"

cd "$ORIG" || exit 1

# ----------------------------------------------------------------------------- base suite
if [[ " $SUITES " == *" base "* ]]; then
    systemctl stop isula-build
    log "base: tests/test.sh base (unchanged)"
    bash tests/test.sh base >"$RES/base.log" 2>&1
    echo "$?" >"$RES/base.rc"
    # test.sh base starts isula-builder itself and kills it at the end or at a failure.
    while read -r pid; do
        kill -0 "$pid" 2>/dev/null && grep -q isula_build.daemon "/proc/$pid/cmdline" 2>/dev/null && kill -TERM "$pid"
    done <"$SB/state/builder-pids"
    sleep 1
    if [ "$BASE_CONTINUE" = always ] || { [ "$BASE_CONTINUE" = auto ] && [ "$(cat "$RES/base.rc")" != 0 ]; }; then
        log "base: every check on its own (tests/lib/base_commonlib.sh, not stopping at a failure)"
        systemctl start isula-build
        RESULTS="$RES/base-continue.tsv" bash "$TOOLS/harness/base-continue.sh" >"$RES/base-continue.log" 2>&1
        systemctl stop isula-build
    fi
fi

# ----------------------------------------------------------------------------- separated-image cover tests
if [[ " $SUITES " == *" cover "* ]]; then
    systemctl start isula-build
    printf 'PS4=%q\n' '+[${BASH_SOURCE[0]##*/}:${LINENO}:${FUNCNAME[0]:-main}] ' >"$SB/state/bashenv"
    for t in tests/src/cover_test_*.sh; do
        name=$(basename "$t" .sh)
        log "cover: $name"
        # Not part of tests/test.sh: run as `bash tests/src/cover_test_X.sh` from a plain shell.
        env -u ISULABUILD_CLI_EXPERIMENTAL BASH_ENV="$SB/state/bashenv" bash -x "$t" >"$RES/$name.log" 2>&1
        echo "$?" >"$RES/$name.rc"
    done
    systemctl stop isula-build
fi

# ----------------------------------------------------------------------------- integration suite
if [[ " $SUITES " == *" integration "* ]]; then
    log "integration: tests/test.sh integration (unchanged)"
    printf 'PS4=%q\n' '+[${BASH_SOURCE[0]##*/}:${LINENO}:${FUNCNAME[0]:-main}] ' >"$SB/state/bashenv"
    (
        exec 19>"$RES/integration.trace"
        export BASH_ENV="$SB/state/bashenv" BASH_XTRACEFD=19
        set +u
        set -o xtrace
        export SHELLOPTS
        bash tests/test.sh integration
    ) >"$RES/integration.log" 2>&1
    echo "$?" >"$RES/integration.rc"
    # test.sh keeps its TMPDIR (buildlog-failed) when a test failed.
    for d in /tmp/tmp.*; do
        [ -f "$d/buildlog-failed" ] && cp "$d/buildlog-failed" "$RES/integration.buildlog-failed"
    done
    if [ "$INTEGRATION_ISOLATED" = always ] || { [ "$INTEGRATION_ISOLATED" = auto ] && grep -q "FAIL$" "$RES/integration.log"; }; then
        systemctl stop isula-build
        while IFS= read -r t; do
            name=$(basename "$t" .sh)
            log "integration, alone: $name"
            rm -rf /etc/isula-build && mkdir -p /etc/isula-build && cp -a "$SB/pristine-config/." /etc/isula-build/
            (
                exec 19>"$RES/iso-$name.trace"
                export BASH_ENV="$SB/state/bashenv" BASH_XTRACEFD=19 ISULABUILD_CLI_EXPERIMENTAL=enabled
                set +u
                set -o xtrace
                export SHELLOPTS
                bash "$TOOLS/harness/integration-one.sh" "$t" "$RES/iso-$name.buildlog-failed"
            ) >"$RES/iso-$name.log" 2>&1
            echo "$?" >"$RES/iso-$name.rc"
        done < <(find "$ORIG"/tests/src -maxdepth 1 -name "test_*" -type f -print)
    fi
fi
log "done"
