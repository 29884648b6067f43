# One image for every topology: `docker run IMAGE run TOPOLOGY` (docs/deployment.md).
# The build stage installs the project's wheel (runtime dependencies only, no extras)
# into a virtualenv; the runtime stage copies that virtualenv and nothing else.
# tests/deploy/test_image_steps.py runs the build stage's RUN steps in a fresh venv, as
# CI cannot run Docker: keep every step in RUN lines that use $VENV and relative paths.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ARG VENV=/opt/pstreams
WORKDIR /src
COPY pyproject.toml README.md ./
COPY processor/ processor/
COPY topologies/ topologies/
COPY schemas/ schemas/
RUN python -m venv "$VENV" \
    && "$VENV/bin/pip" wheel --no-cache-dir --no-deps --wheel-dir dist . \
    && "$VENV/bin/pip" install --no-cache-dir dist/*.whl

FROM ${PYTHON_IMAGE} AS runtime
ARG VENV=/opt/pstreams
RUN useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin pstreams \
    && install -d -o pstreams -g pstreams /var/lib/pstreams
COPY --from=build ${VENV} ${VENV}
ENV PATH="${VENV}/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    STATE_DIR=/var/lib/pstreams \
    OPS_PORT=9400 \
    LOG_FORMAT=json
WORKDIR /var/lib/pstreams
USER 10001:10001
# RocksDB state of the topology; restored from its changelog topics when empty.
VOLUME ["/var/lib/pstreams"]
EXPOSE 9400
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ['OPS_PORT'], timeout=4)"]
ENTRYPOINT ["pstreams"]
CMD ["--help"]
