#!/usr/bin/env bash
# Install the Ceph daemons that scripts/s3-server.sh runs (radosgw, ceph-mon, ceph-osd),
# only when one is missing: a second run does nothing and needs no network.
# Debian/Ubuntu; run as root (or with sudo). ~30 s on a fresh machine.
set -euo pipefail
missing=()
for bin in radosgw ceph-mon ceph-osd; do
    command -v "$bin" >/dev/null || missing+=("$bin")
done
if ((${#missing[@]} == 0)); then
    echo "install-ceph: radosgw, ceph-mon and ceph-osd already installed" >&2
    exit 0
fi
SUDO=""
[[ $(id -u) -eq 0 ]] || SUDO=sudo
echo "install-ceph: installing ${missing[*]}" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
