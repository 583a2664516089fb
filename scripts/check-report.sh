#!/usr/bin/env bash
# Renders a report.html in headless Chromium (Debian's `chromium` package) and writes a PNG screenshot,
# to check what a person sees: scripts/check-report.sh runs/demo/report.html /tmp/report.png
set -euo pipefail
report="$(realpath "${1:?usage: check-report.sh <report.html> [out.png]}")"
out="${2:-${report%.html}.png}"
command -v chromium >/dev/null || { echo "chromium is not installed: sudo apt-get install chromium" >&2; exit 1; }
profile="$(mktemp -d)"
trap 'rm -rf "$profile"' EXIT
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
  --disable-component-update --disable-sync --user-data-dir="$profile" --window-size=1200,1800 \
  --screenshot="$out" "file://$report" 2>/dev/null
echo "screenshot: $out"
