#!/bin/sh
# Builds the original Go client (cmd/cli) offline from the vendored sources, with Debian's Go (1.19).
set -eu
ORIG_DIR=${ORIG_DIR:-/work/orig}
cd "$ORIG_DIR/isula-build"
GOFLAGS=-mod=vendor GO111MODULE=on GOPROXY=off GOTOOLCHAIN=local GOCACHE="$ORIG_DIR/.gocache" \
    go build -mod=vendor -tags seccomp \
    -ldflags "-X isula.org/isula-build/pkg/version.GitCommit=$(git -C "$ORIG_DIR/isula-build" rev-parse --short HEAD 2>/dev/null || echo unknown) -X isula.org/isula-build/pkg/version.Version=$(cat VERSION) -X isula.org/isula-build/pkg/version.BuildInfo=$(date +%s)" \
    -o "$ORIG_DIR/bin/isula-build-go" ./cmd/cli
"$ORIG_DIR/bin/isula-build-go" version | head -4
