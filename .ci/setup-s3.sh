#!/usr/bin/env bash
# Installs versitygw, the S3-compatible server (Apache-2.0) that the backup
# S3 target's tests run against (internal/s3test starts it on loopback with
# a posix backend in a temporary folder). It needs only Go and the module
# proxy; `go install pkg@version` leaves go.mod alone. Compiling it takes a
# few minutes. Idempotent: it does nothing when the pinned version is
# already in $(go env GOBIN) or $(go env GOPATH)/bin, and reinstalls over
# any other version.
set -euo pipefail

# Keep in step with s3test.Module in internal/s3test/s3test.go.
module=github.com/versity/versitygw
version=v1.8.0

bindir=$(go env GOBIN)
if [ -z "$bindir" ]; then bindir="$(go env GOPATH | cut -d: -f1)/bin"; fi
bin="$bindir/versitygw"

if [ -x "$bin" ] && go version -m "$bin" 2>/dev/null | grep -qE "^[[:space:]]+mod[[:space:]]+$module[[:space:]]+$version([[:space:]]|$)"; then
  echo "versitygw $version already installed: $bin"
  exit 0
fi

# Outside any module, so that this repository's go.mod is never consulted.
(cd / && go install "$module/cmd/versitygw@$version")
if ! [ -x "$bin" ]; then
  echo "go install succeeded but $bin is missing" >&2
  exit 1
fi
echo "versitygw $version installed: $bin"
