# The appliance: one workspace per container, its data in the /data volume.
#
#   docker build -t aat-appliance .
#   docker run -d -p 8000:8000 -v aat-data:/data \
#       -e AAT_MASTER_KEY=... -e AAT_META_APP_SECRET=... -e AAT_META_VERIFY_TOKEN=... aat-appliance
#
# The image also carries `aat-control-plane` (same package): `docker run ... aat-appliance` runs
# `aat-appliance serve`; `--entrypoint aat-control-plane` runs the control plane instead.
# A bind-mounted data directory must be writable by uid 10001.

ARG PYTHON_IMAGE=python:3.12-slim

# --- build: install the project and its dependencies into a virtual environment ---------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/aat
WORKDIR /src
# The runtime dependencies first, exactly as locked: every file checked against its sha256 in
# requirements/image.lock (regenerate with the command at its top when pyproject.toml changes;
# tests/packaging/test_image_lock.py checks that it covers every dependency). Its own layer, so
# a code change does not reinstall them.
COPY requirements/image.lock ./requirements/image.lock
RUN /opt/aat/bin/pip install --require-hashes --only-binary=:all: -r requirements/image.lock
# Only what the package is built from (setuptools reads README.md for the long description).
COPY pyproject.toml README.md ./
COPY appliance ./appliance
COPY control_plane ./control_plane
COPY migrations ./migrations
# --no-deps: nothing beyond the lock is installed; pip check fails the build if the lock no
# longer satisfies pyproject.toml. pip compiles every module to bytecode at install time.
RUN /opt/aat/bin/pip install --no-deps . \
    && /opt/aat/bin/pip check \
    && /opt/aat/bin/aat-appliance --version \
    && /opt/aat/bin/aat-control-plane --help > /dev/null

# --- runtime: the virtual environment and nothing else (no compiler, no pip cache, no sources) -
FROM ${PYTHON_IMAGE}
ENV PATH=/opt/aat/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    AAT_DATA_DIR=/data \
    AAT_HOST=0.0.0.0
RUN groupadd --system --gid 10001 aat \
    && useradd --system --uid 10001 --gid aat --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin aat \
    && install -d -o aat -g aat -m 0700 /data /backups \
    && install -d -o root -g root -m 0755 /srv/aat
COPY --from=build /opt/aat /opt/aat
# An empty working directory: Settings also read ./.env, and nothing should be found by accident.
WORKDIR /srv/aat
USER aat:aat
VOLUME ["/data"]
EXPOSE 8000
# No curl in the slim image: Python asks /healthz (the process is up; /readyz is for orchestrators).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; port = os.environ.get('AAT_PORT', '8000'); sys.exit(0 if urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=4).status == 200 else 1)"]
ENTRYPOINT ["aat-appliance"]
CMD ["serve"]
