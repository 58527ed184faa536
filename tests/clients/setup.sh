#!/usr/bin/env bash
# Installs the registry clients the client tests drive (tests/e2e/clients.rs)
# under one directory, default /var/cache/regtap-ci (the tests look there, or
# in $REGTAP_CI_TOOLS):
#   bin/crane   crane built from Debian's sources (build-crane.sh)
#   venv/       oras-py, python-dxf and requests, pinned by requirements.txt
# Idempotent, and quick when everything is in place. ctr and containerd come
# with Debian's docker.io.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tools=${1:-${REGTAP_CI_TOOLS:-/var/cache/regtap-ci}}
mkdir -p "$tools/bin"

crane=$("$here/build-crane.sh" "$tools/crane")
ln -sfn "$crane" "$tools/bin/crane"

# The venv is rebuilt when the pins change.
pins=$(sha256sum "$here/requirements.txt" | cut -d' ' -f1)
if [[ $(cat "$tools/venv/requirements.sha256" 2>/dev/null) != "$pins" ]]; then
  rm -rf "$tools/venv"
  /usr/bin/python3 -m venv "$tools/venv"
  "$tools/venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
  echo "$pins" >"$tools/venv/requirements.sha256"
fi
echo "client tools in $tools: crane $("$tools/bin/crane" version);" \
  "$("$tools/venv/bin/pip" list 2>/dev/null | grep -Ei '^(oras|python-dxf|requests) ' | tr -s ' ' | paste -sd, -)"
