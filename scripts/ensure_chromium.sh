#!/usr/bin/env bash
# Install Chromium (the report's browser tests open the HTML report in it, headless) when it is
# missing and we may. Without it the report is still written; only those tests skip.
for b in chromium chromium-browser google-chrome google-chrome-stable; do
  if command -v "$b" >/dev/null 2>&1; then exit 0; fi
done
if command -v apt-get >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; else SUDO=none; fi
  if [ "$SUDO" != none ]; then
    echo "installing chromium for the report's browser tests"
    $SUDO apt-get update -qq >/dev/null 2>&1 || true
    $SUDO apt-get install -y -qq chromium >/dev/null 2>&1 && exit 0
  fi
fi
echo "warning: chromium is not installed and could not be installed here;" \
     "the report's browser tests will skip (install it: apt-get install chromium, or set TIRL_CHROMIUM)" >&2
exit 0
