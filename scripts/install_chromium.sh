#!/usr/bin/env bash
# Installs Debian's `chromium` package (headless rendering of the leaderboard page in
# tests/test_leaderboard_html.py). Prints the browser's path and exits 0 when it is there;
# exits non-zero, saying why, when it cannot be installed (not Debian/Ubuntu, no root and no
# sudo, no network to the package mirror).
set -euo pipefail

for candidate in chromium chromium-browser; do
  if path=$(command -v "$candidate"); then
    echo "$path"
    exit 0
  fi
done

if ! command -v apt-get >/dev/null; then
  echo "install_chromium: no apt-get here; install Chromium by hand" >&2
  exit 1
fi
if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  as_root=(sudo -n)
else
  echo "install_chromium: apt-get needs root, and sudo is not available without a password" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
# The package lists may be missing or stale on a fresh machine; update them only if the
# package is unknown, since an update costs a network round trip.
if ! apt-cache show chromium >/dev/null 2>&1; then
  "${as_root[@]}" apt-get update -qq
fi
"${as_root[@]}" apt-get install -y -qq --no-install-recommends chromium >&2
command -v chromium
