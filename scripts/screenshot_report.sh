#!/usr/bin/env bash
# Render a run's report.html in headless Chromium (Debian package `chromium`) and save a PNG.
# Usage: scripts/screenshot_report.sh RUN_DIR OUT.png
set -euo pipefail
run=${1:?run folder}; out=${2:?output png}
.venv/bin/pcdarts report "$run"
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
  --disable-component-update --disable-sync --user-data-dir="$(mktemp -d)" --hide-scrollbars \
  --window-size=1300,${HEIGHT:-3200} --screenshot="$out" "file://$(realpath "$run")/report.html"
echo "wrote $out"
