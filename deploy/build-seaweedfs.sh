#!/usr/bin/env bash
# Builds SeaweedFS's `weed` (Apache-2.0) from its Go module, for tests/integration/test_backup_s3.py:
# a real S3-compatible server to back up to. It takes minutes on 2 cores, so it is not part of
# `make install`; the S3 test runs this on demand, and a second run finds the binary and returns at once.
#
#   deploy/build-seaweedfs.sh            # builds if needed; prints the weed binary's path on its last line
#   deploy/build-seaweedfs.sh --cached   # prints the path if already built, else exits 1 (builds nothing)
#
# JARVIS_SEAWEEDFS_DIR (default ~/.cache/jarvis-streams/seaweedfs) holds the binary, GOPATH and
# GOCACHE, outside the work tree so that worktrees, `make clean` and CI runs on this machine share it.
set -euo pipefail

# The one version the Go module proxy lists (a pseudo-version: SeaweedFS's tags are not module versions).
VERSION="${SEAWEEDFS_VERSION:-v0.0.0-20261109003541-7506e5f91cd6}"
DIR="${JARVIS_SEAWEEDFS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/jarvis-streams/seaweedfs}"
BIN="$DIR/$VERSION/bin/weed"

if [[ -x "$BIN" ]]; then
    echo "$BIN"
    exit 0
fi
if [[ "${1:-}" == "--cached" ]]; then
    echo "build-seaweedfs: $BIN is not built yet" >&2
    exit 1
fi
if ! command -v go >/dev/null; then
    echo "build-seaweedfs: go not found; install Go 1.24 or newer to build the S3 test server" >&2
    exit 1
fi

mkdir -p "$DIR/$VERSION"
export GOPATH="$DIR/gopath" GOCACHE="$DIR/gocache"
export GOFLAGS="-buildvcs=false -modcacherw" CGO_ENABLED=0
echo "build-seaweedfs: building github.com/seaweedfs/seaweedfs/weed@$VERSION (several minutes on 2 cores)..." >&2
start=$(date +%s)
# `go install MODULE@VERSION` refuses this module: its go.mod has replace directives, which apply only
# to a main module. So the module's source is taken from the module proxy and built as the main module.
SRC=$(go mod download -json "github.com/seaweedfs/seaweedfs@$VERSION" \
      | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
if [[ -z "$SRC" || ! -f "$SRC/go.mod" ]]; then
    echo "build-seaweedfs: could not download github.com/seaweedfs/seaweedfs@$VERSION" >&2
    exit 1
fi
# nice: the machine's cores are shared; -p 2 keeps the compiler from running more jobs than cores.
# Written to weed.partial and moved into place once complete, so that an interrupted build is never
# taken for a finished one.
mkdir -p "$DIR/$VERSION/bin"
(cd "$SRC" && nice -n 19 go build -p 2 -trimpath -ldflags "-s -w" -o "$BIN.partial" ./weed) >&2
mv "$BIN.partial" "$BIN"
echo "build-seaweedfs: built in $(( $(date +%s) - start )) s" >&2
echo "$BIN"
