#!/bin/sh
# Makes the project's virtual environment, .venv beside this folder, with the machine's python3
# (PEP 668: Debian's system Python takes no pip installs). Debian ships python3 without venv
# support (no ensurepip): as root this installs python3-venv first; otherwise it says what to run.
# Safe to run again: an existing .venv is kept.
set -eu
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] && exit 0
if ! python3 -c 'import ensurepip' 2>/dev/null; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
  else
    echo "venv.sh: this python3 cannot make a virtual environment (no ensurepip);" \
         "install it first (Debian/Ubuntu: sudo apt install python3-venv), then run this again" >&2
    exit 1
  fi
fi
rm -rf .venv  # a half-made one from an earlier failed try
python3 -m venv .venv
