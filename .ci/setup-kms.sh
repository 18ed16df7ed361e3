#!/usr/bin/env bash
# Installs local-kms, the AWS-KMS-compatible server the KMS keyring tests run
# against (internal/keyringtest.StartLocalKMS starts it on loopback). It needs only Go and
# the module proxy; `go install pkg@version` leaves go.mod alone. Idempotent:
# it does nothing when the pinned version is already in $(go env GOBIN) or
# $(go env GOPATH)/bin, and reinstalls over any other version.
set -euo pipefail

# No tagged versions are served: keep this pseudo-version in step with
# LocalKMSModule in internal/keyringtest/backends.go (TestSetupKMSPin checks).
module=github.com/nsmithuk/local-kms
version=v0.0.0-20260228092603-2a5e92d09ab6

bindir=$(go env GOBIN)
if [ -z "$bindir" ]; then bindir="$(go env GOPATH | cut -d: -f1)/bin"; fi
bin="$bindir/local-kms"

if [ -x "$bin" ] && go version -m "$bin" 2>/dev/null | grep -qE "^[[:space:]]+mod[[:space:]]+$module[[:space:]]+$version([[:space:]]|$)"; then
  echo "local-kms $version already installed: $bin"
  exit 0
fi

# Outside any module, so that this repository's go.mod is never consulted.
(cd / && go install "$module@$version")
if ! [ -x "$bin" ]; then
  echo "go install succeeded but $bin is missing" >&2
  exit 1
fi
echo "local-kms $version installed: $bin"
