#!/usr/bin/env bash
# `make test`: start the stack, run the whole suite, stop the stack, exit with the suite's status.
# An empty selection (pytest exit 5) is a failure, not a pass.
set -uo pipefail
cd "$(dirname "$0")/.."
FW=.venv/bin/forewarn

started_here=0
if ! $FW stack status --json >/dev/null 2>&1; then
  started_here=1
fi
if ! $FW stack up; then
  echo "make test: the stack did not start (see the message above); no tests were run." >&2
  exit 1
fi

.venv/bin/python -m pytest tests --durations=30 ${PYTEST_ARGS:-} -p no:cacheprovider
status=$?

if [ "$started_here" = 1 ]; then
  $FW stack down || true
fi
if [ "$status" = 5 ]; then
  echo "make test: pytest collected no tests; that is a failure." >&2
  status=1
fi
exit "$status"
