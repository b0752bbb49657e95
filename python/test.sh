#!/usr/bin/env bash
# The Python package's tests: `pip install ./python` into a fresh virtual environment (the
# install a user does, building the release extension with maturin from PyPI), then pytest.
# Extra arguments go to pytest. PostgreSQL cases use DS_TEST_POSTGRES or 127.0.0.1:5432,
# and fail under CI=true when no server answers (as the Rust tests do).
set -euo pipefail
cd "$(dirname "$0")/.."

venv=target/python-venv
python3 -m venv --clear "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet pytest
# Not editable: the tests import the installed wheel's `ds` and `ads`, run from outside
# the source tree so the `python/ds` folder cannot shadow them.
"$venv/bin/python" -m pip install --quiet ./python
cd target
"$OLDPWD/$venv/bin/python" -m pytest "$OLDPWD/python/tests" -q -p no:cacheprovider "$@"
