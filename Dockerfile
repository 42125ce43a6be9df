# Plinth's container image: `plinth serve` as a non-root user on a read-only root filesystem.
#
#   podman build -t plinth:0.1.0 .          (or docker build; `make image` does this)
#   podman run --rm -p 8000:8000 --read-only --tmpfs /tmp -v plinth-home:/var/lib/plinth plinth:0.1.0
#
# Everything Plinth writes goes to PLINTH_HOME (/var/lib/plinth: artifacts, and the SQLite
# database when PLINTH_DATABASE_URL is unset) or to /tmp (the Prometheus multiprocess folder
# that `plinth serve --workers N` makes). Configuration is PLINTH_* environment variables and,
# for per-model policies, /etc/plinth/plinth.toml (a ConfigMap on Kubernetes). See
# docs/deploy.md.

# The base: any Debian-based image with Python 3.11+ and `python3 -m venv`. The default is
# the official slim image; where Docker Hub is out of reach, deploy/image/debian-base.sh
# builds an equivalent from Debian's own packages (BASE_IMAGE=localhost/plinth-base:...).
ARG BASE_IMAGE=python:3.11-slim-bookworm

# -- build: a virtual environment in /opt/plinth, copied whole into the runtime stage ---------
FROM ${BASE_IMAGE} AS build
# Optional model formats, as pip extras: --build-arg EXTRAS=onnx,lightgbm (docs/flavors.md).
ARG EXTRAS=""
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python3 -m venv /opt/plinth
WORKDIR /src
# Dependencies first, from pyproject.toml alone, so editing Plinth's code or README does
# not download them again: placeholders stand in for both.
COPY pyproject.toml ./
RUN mkdir plinth && touch plinth/__init__.py README.md \
    && /opt/plinth/bin/pip install ".${EXTRAS:+[$EXTRAS]}" \
    && /opt/plinth/bin/pip uninstall --yes plinth-ml \
    && rm -rf plinth README.md build ./*.egg-info
COPY README.md ./
COPY plinth ./plinth
# Compiled bytecode is baked in: the root filesystem is read-only at run time. The libraries'
# own test suites (about 120 MB of numpy, scipy, pandas, pyarrow...) are never imported.
RUN /opt/plinth/bin/pip install --no-deps . \
    && find /opt/plinth/lib -depth -type d -path '*/site-packages/*' -name tests \
        -exec rm -rf {} + \
    && /opt/plinth/bin/python -m compileall -q -j 0 /opt/plinth/lib

# -- runtime -----------------------------------------------------------------------------------
FROM ${BASE_IMAGE}
ARG PLINTH_UID=10001
LABEL org.opencontainers.image.title="plinth" \
      org.opencontainers.image.description="Plinth: contracts, serving, logging, replay and monitoring for ML models" \
      org.opencontainers.image.licenses="Apache-2.0"
# A fixed numeric uid (Kubernetes' runAsNonRoot can check it), group 0 owning PLINTH_HOME as
# OpenShift-style arbitrary uids expect.
# Shared libraries some extras need from the system, e.g. SYSTEM_PACKAGES=libgomp1 for
# LightGBM (Debian package names; the default image needs none).
ARG SYSTEM_PACKAGES=""
RUN if [ -n "$SYSTEM_PACKAGES" ]; then \
        apt-get update && apt-get install -y --no-install-recommends $SYSTEM_PACKAGES \
        && rm -rf /var/lib/apt/lists/*; \
    fi
RUN useradd --system --uid ${PLINTH_UID} --gid 0 --home-dir /var/lib/plinth \
        --no-create-home --shell /usr/sbin/nologin plinth \
    && mkdir -p /var/lib/plinth /etc/plinth \
    && chown ${PLINTH_UID}:0 /var/lib/plinth && chmod 0770 /var/lib/plinth
COPY --from=build /opt/plinth /opt/plinth
ENV PATH=/opt/plinth/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PLINTH_HOME=/var/lib/plinth \
    PLINTH_POLICY_FILE=/etc/plinth/plinth.toml
VOLUME ["/var/lib/plinth"]
WORKDIR /var/lib/plinth
USER ${PLINTH_UID}
EXPOSE 8000
# Liveness only (the process answers); readiness is /readyz, which Kubernetes probes itself.
# No curl in a slim image: the standard library does the request.
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python3", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status != 200)"]
ENTRYPOINT ["plinth"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
