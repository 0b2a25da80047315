#!/usr/bin/env bash
# `make demo`: the main job with embedded defaults, from a fresh clone.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/forewarn demo "$@"
