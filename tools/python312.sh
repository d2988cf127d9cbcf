#!/usr/bin/env bash
# Prints the path of a Python 3.12 interpreter, or fails with a clear message.
# Looks at $INVPPL_PYTHON, then python3.12 on PATH, then pyenv's installs.
set -euo pipefail
for candidate in "${INVPPL_PYTHON:-}" "$(command -v python3.12 2>/dev/null || true)" \
        "$(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.12*/bin/python3.12 2>/dev/null | sort -V | tail -n 1)"; do
    if [ -n "$candidate" ] && "$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; then
        echo "$candidate"
        exit 0
    fi
done
echo "invppl needs Python 3.12: none found on PATH or under pyenv (set INVPPL_PYTHON=/path/to/python3.12)" >&2
exit 1
