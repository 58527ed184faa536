#!/usr/bin/env bash
# Builds crane (go-containerregistry 0.14, Debian's source package) with
# bookworm-backports' Go 1.23, offline: the Go sources are Debian's
# golang-*-dev packages, downloaded and extracted into a GOPATH (installing
# them would pull hundreds of packages). No Go module proxy, no network for Go.
#
# Usage: build-crane.sh [CACHE_DIR]   (default /var/cache/regtap-ci/crane; setup.sh calls it)
# Prints the path of the crane binary. Idempotent: when the binary for this
# package list exists, it only prints its path.
set -euo pipefail

cache=${1:-/var/cache/regtap-ci/crane}
go=/usr/lib/go-1.23/bin/go

# go-containerregistry and every package crane imports, directly or not.
packages=(
  golang-github-google-go-containerregistry-dev
  golang-github-cespare-xxhash-dev
  golang-github-containerd-stargz-snapshotter-dev
  golang-github-docker-distribution-dev
  golang-github-docker-docker-credential-helpers-dev
  golang-github-docker-docker-dev
  golang-github-docker-go-connections-dev
  golang-github-docker-go-units-dev
  golang-github-gogo-protobuf-dev
  golang-github-google-go-cmp-dev
  golang-github-klauspost-compress-dev
  golang-github-mitchellh-go-homedir-dev
  golang-github-opencontainers-go-digest-dev
  golang-github-opencontainers-image-spec-dev
  golang-github-pkg-errors-dev
  golang-github-sirupsen-logrus-dev
  golang-github-spf13-cobra-dev
  golang-github-spf13-pflag-dev
  golang-github-vbatts-tar-split-dev
  golang-golang-x-sync-dev
  golang-golang-x-sys-dev
)

# The binary is keyed by the package versions apt would fetch now and this script.
versions=$(apt-cache policy "${packages[@]}" golang-1.23-go |
  awk '/^[^ ]/ {p=$1} /Candidate:/ {print p, $2}')
key=$(printf '%s\n' "$versions" "$(sha256sum <"$0")" | sha256sum | cut -c1-16)
crane="$cache/bin/crane-$key"
if [[ -x $crane ]]; then
  echo "$crane"
  exit 0
fi

if [[ ! -x $go ]]; then
  echo "build-crane.sh: $go missing (apt-get install -t bookworm-backports golang-1.23-go)" >&2
  exit 1
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/build-crane.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/debs" "$work/root" "$cache/bin"
# apt-get download writes into the current directory; as root it warns that
# _apt cannot read it, which is harmless here.
(cd "$work/debs" && apt-get download -qq "${packages[@]}" 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2 || true)
shopt -s nullglob
debs=("$work"/debs/*.deb)
if ((${#debs[@]} != ${#packages[@]})); then
  echo "build-crane.sh: downloaded ${#debs[@]} of ${#packages[@]} packages" >&2
  exit 1
fi
for deb in "${debs[@]}"; do
  dpkg-deb -x "$deb" "$work/root"
done

# `crane version` says the Debian version (GOPATH builds carry no module version).
version=$(dpkg-deb -f "$work"/debs/golang-github-google-go-containerregistry-dev_*.deb Version)
GOPATH="$work/root/usr/share/gocode" GO111MODULE=off GOPROXY=off GOFLAGS= \
  GOCACHE="$cache/gocache" GOTOOLCHAIN=local CGO_ENABLED=0 \
  "$go" build -trimpath -o "$crane.tmp" \
  -ldflags "-X github.com/google/go-containerregistry/cmd/crane/cmd.Version=$version" \
  github.com/google/go-containerregistry/cmd/crane
mv "$crane.tmp" "$crane"
# Older builds of other package versions are not needed any more.
find "$cache/bin" -name 'crane-*' ! -name "crane-$key" -delete
echo "$crane"
