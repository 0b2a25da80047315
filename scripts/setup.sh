#!/usr/bin/env bash
# Idempotent set-up used by `make demo` and `make test`: checks the toolchain, creates .venv,
# installs the project, fetches the Kafka jars and installs redis-server when missing.
# `setup.sh --python-only` (make lint, make test-unit) stops after the virtual environment: no Java,
# Maven, Kafka jars or Redis needed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON_ONLY=0
[ "${1:-}" = "--python-only" ] && PYTHON_ONLY=1

PYTHON=${PYTHON:-python3}
VENV=.venv
EXTRAS=${FOREWARN_EXTRAS:-train,dev}

fail() { echo "setup: $*" >&2; exit 1; }

"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
  || fail "Python 3.11 or newer is needed (found: $("$PYTHON" --version 2>&1)). Install python3.11 and run again, or set PYTHON=/path/to/python3.11."
if [ "$PYTHON_ONLY" = 0 ]; then
command -v java >/dev/null \
  || fail "Java 17+ is needed to run the Kafka broker and Spark. Install it: apt-get install -y openjdk-17-jre-headless"
java_major=$(java -version 2>&1 | awk -F'"' '/version/ {split($2, v, "."); print (v[1] == "1" ? v[2] : v[1])}')
[ "${java_major:-0}" -ge 17 ] \
  || fail "Java 17+ is needed, found Java ${java_major:-unknown}. Install it: apt-get install -y openjdk-17-jre-headless"
command -v mvn >/dev/null \
  || fail "Maven is needed to fetch the Kafka jars from Maven Central. Install it: apt-get install -y maven"
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi

# Reinstall only when the dependency declaration changed, so a second `make setup` takes seconds.
stamp="$VENV/.forewarn-installed"
want="$(sha256sum pyproject.toml | cut -c1-16)-$EXTRAS"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing forewarn[$EXTRAS] into $VENV (first time: a few minutes)"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip setuptools wheel \
    || fail "pip could not reach the package index. Check network access to PyPI and run 'make setup' again."
  "$VENV/bin/python" -m pip install --quiet -e ".[$EXTRAS]" \
    || fail "installing the Python dependencies failed (see pip's message above). Fix it and run 'make setup' again."
  echo "$want" > "$stamp"
fi

[ "$PYTHON_ONLY" = 1 ] && exit 0

# checkov (policy scan of k8s/ and infra/ in the integration tests) pins dozens of packages the project
# pins differently, so it lives in its own venv under the state folder, pinned, installed once.
CHECKOV_VERSION=3.3.30
CHECKOV_VENV=.forewarn/tools/checkov
if [ "$("$CHECKOV_VENV/bin/checkov" --version 2>/dev/null)" != "$CHECKOV_VERSION" ]; then
  echo "setup: installing checkov $CHECKOV_VERSION into $CHECKOV_VENV"
  rm -rf "$CHECKOV_VENV" && mkdir -p "$(dirname "$CHECKOV_VENV")"
  "$PYTHON" -m venv "$CHECKOV_VENV" \
    && "$CHECKOV_VENV/bin/python" -m pip install --quiet --upgrade pip \
    && "$CHECKOV_VENV/bin/python" -m pip install --quiet "checkov==$CHECKOV_VERSION" \
    || fail "installing checkov into $CHECKOV_VENV failed (see pip's message above). Run 'make setup' again."
fi
"$VENV/bin/forewarn" stack install
