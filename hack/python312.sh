#!/usr/bin/env bash
# Print the path of a working Python 3.12 (the project, NetBox 4.7 and pynetbox 7.9 need it).
# The pyenv shim named python3.12 may exist without 3.12 being selected, so each candidate is run.
set -euo pipefail
for candidate in "$(command -v python3.12 || true)" /root/.pyenv/versions/3.12*/bin/python3.12 \
    /usr/bin/python3.12 /usr/local/bin/python3.12; do
    if [[ -n "$candidate" && -x "$candidate" ]] && "$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; then
        echo "$candidate"
        exit 0
    fi
done
echo "no working python3.12 found: install Python 3.12 (e.g. pyenv install 3.12)" >&2
exit 1
