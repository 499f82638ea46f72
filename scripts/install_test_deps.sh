#!/usr/bin/env bash
# Installs what the test suite's real engines need, when missing: Debian packages (as root, through
# apt) for the gateway, shell and store tests. Called first by the README's test command (and so by
# .ci/run). Safe to run again: it installs only what is not there yet.
set -euo pipefail
packages=()
# nginx and haproxy install to /usr/sbin, which a non-login PATH may not list.
need() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || packages+=("$2"); }
need bash bash
need nginx nginx
need haproxy haproxy
need redis-server redis-server  # the shared state store tests start their own
need openssl openssl  # ... and make a certificate for the rediss:// (TLS) one
need curl curl  # the exec tests and the docs test run the README's curl lines as written
need zsh zsh    # completion tests run the generated scripts in the real shells
[ -f /usr/share/bash-completion/bash_completion ] || packages+=(bash-completion)
need fish fish
if [ ${#packages[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install_test_deps: missing ${packages[*]}; run as root or install them with your package manager" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
fi
