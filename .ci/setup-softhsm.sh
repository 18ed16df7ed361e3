#!/usr/bin/env bash
# Installs SoftHSM2, the PKCS#11 token the keyring tests run against
# (keyring/pkcs11_test.go). Idempotent: it does nothing when the library and
# softhsm2-util are already present, and runs apt-get update only when it must
# install. Run it as root (CI) or with sudo.
set -euo pipefail

lib=/usr/lib/softhsm/libsofthsm2.so
if [ -e "$lib" ] && command -v softhsm2-util >/dev/null; then
  echo "softhsm2 already installed: $(softhsm2-util --version)"
  exit 0
fi

sudo=
if [ "$(id -u)" -ne 0 ]; then sudo=sudo; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends softhsm2

if [ ! -e "$lib" ]; then
  echo "softhsm2 installed but $lib is missing" >&2
  exit 1
fi
echo "softhsm2 installed: $(softhsm2-util --version)"
