#!/usr/bin/env bash
# Install bubblewrap (the Python sandbox's isolation) when it is missing and we may.
# Without it the sandbox still runs, with resource limits but no namespace isolation.
if command -v bwrap >/dev/null 2>&1; then exit 0; fi
if command -v apt-get >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; else SUDO=none; fi
  if [ "$SUDO" != none ]; then
    echo "installing bubblewrap for the Python sandbox"
    $SUDO apt-get update -qq >/dev/null 2>&1 || true
    $SUDO apt-get install -y -qq bubblewrap >/dev/null 2>&1 && exit 0
  fi
fi
echo "warning: bubblewrap (bwrap) is not installed and could not be installed here;" \
     "the Python sandbox will run without namespace isolation (install it: apt-get install bubblewrap)" >&2
exit 0
