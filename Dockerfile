# syntax=docker/dockerfile:1
# One image recipe for every Forewarn service; the build args pick the service and its port:
#   ingest   8000  HTTP batch ingest API (POST /v1/readings) -> sensor.readings / sensor.readings.dlq
#   scorer   8001  model scoring: features.vectors -> risk.scores (MLflow alias "champion")
#   alerter  8002  alert policy + Slack / PagerDuty notifiers + feedback API: risk.scores -> alerts
#   features 8003  streaming feature service: sensor.readings -> Redis online store + features.vectors
#   monitor  8004  drift and decay of the champion: features.vectors, risk.scores, labels -> model.health
# Build from the repository root (every image installs the whole forewarn distribution):
#   docker build --build-arg SERVICE=ingest --build-arg PORT=8000 -t forewarn/ingest:dev .
# docker-compose.yml passes the same args per service.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- build: a self-contained virtualenv in /opt/venv (identical for every service) ------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src

# Dependencies first, read from pyproject.toml, so a code-only change reuses this (large) layer.
COPY pyproject.toml README.md ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
 && pip install --upgrade pip setuptools wheel \
 && pip install -r /tmp/requirements.txt

COPY src/ src/
COPY services/ services/
# Not editable: the runtime image must not need /src.
RUN pip install --no-deps . \
 && python -m compileall -q /opt/venv/lib \
 && forewarn --help > /dev/null

# ---- runtime ------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
# libgomp1: OpenMP runtime that LightGBM's wheel links against (python:*-slim lacks it).
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgomp1 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 forewarn \
 && useradd --system --uid 10001 --gid forewarn --no-create-home --home-dir /tmp --shell /usr/sbin/nologin forewarn

COPY --from=build /opt/venv /opt/venv

# Read-only-root friendly: bytecode was compiled at build time and nothing writes beside the code;
# HOME, TMPDIR and the working directory (local state in ./.forewarn) are /tmp, the only writable
# path: a tmpfs in compose, an emptyDir in Kubernetes.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TMPDIR=/tmp \
    FOREWARN_ENVIRONMENT=production
WORKDIR /tmp

# Declared only here, after every shared layer, so the five images share the build stage and the layers
# above; only what follows differs per service.
ARG SERVICE
ARG PORT
# Fail the build, not the container, on a missing service or one `forewarn run` does not know.
RUN test -n "${SERVICE}" && test -n "${PORT}" \
 || { echo "build with --build-arg SERVICE=<ingest|features|scorer|alerter|monitor> --build-arg PORT=<its port>" >&2; exit 1; } \
 && python -c "import sys; from forewarn.cli.run import Service; Service(sys.argv[1])" "${SERVICE}"
LABEL org.opencontainers.image.title="forewarn-${SERVICE}"
# The image's service and port at run time (CMD and HEALTHCHECK read them; build args are gone by then).
ENV FOREWARN_SERVICE=${SERVICE} \
    FOREWARN_SERVICE_PORT=${PORT}

# Settings default to loopback (safe on a workstation); in a container the port is published from outside.
# One line for all services because a Dockerfile cannot upper-case ${SERVICE}; each service reads only its
# own FOREWARN_<SERVICE>__HOST, and a deploy still overrides it by that name.
ENV FOREWARN_INGEST__HOST=0.0.0.0 \
    FOREWARN_FEATURES__HOST=0.0.0.0 \
    FOREWARN_SCORER__HOST=0.0.0.0 \
    FOREWARN_ALERTER__HOST=0.0.0.0 \
    FOREWARN_MONITOR__HOST=0.0.0.0
USER 10001:10001
EXPOSE ${PORT}

# /healthz is liveness only (the process serves requests); readiness (/readyz) is for orchestrators.
# Shell form: the port comes from the image's environment when the check runs.
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:${FOREWARN_SERVICE_PORT}/healthz', timeout=2)"

# exec: sh hands PID 1 to the service, which then receives SIGTERM directly (flush producers, commit
# offsets); exec-form CMD cannot expand a variable, so sh only substitutes the service name.
CMD ["sh", "-c", "exec forewarn run \"$FOREWARN_SERVICE\""]
