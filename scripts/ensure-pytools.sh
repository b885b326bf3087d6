#!/usr/bin/env bash
# Installs the Python tools the tests run (schemathesis, openapi-spec-validator, standardwebhooks) into
# tools/.venv from PyPI, pinned by tools/requirements.txt; does nothing when they are current.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=tools/.venv
stamp=$venv/.requirements
if [ -x "$venv/bin/st" ] && [ -f "$stamp" ] && cmp -s tools/requirements.txt "$stamp"; then exit 0; fi
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check -r tools/requirements.txt
cp tools/requirements.txt "$stamp"
"$venv/bin/st" --version
