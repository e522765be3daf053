# ocync's container image: the wheel built in one stage, installed into a venv in a slim
# Python base in the next. Runs as a fixed non-root UID with no shell needed at run time,
# and works with readOnlyRootFilesystem: true (it writes only to the cache volume and /tmp).
# Build: make image (docker or podman); the versions installed are pinned by constraints.txt.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml README.md constraints.txt ./
COPY ocync ./ocync
COPY mockregistry ./mockregistry
RUN python -m pip wheel --no-deps --wheel-dir /dist . \
    && python -m venv /opt/ocync \
    && /opt/ocync/bin/pip install --no-cache-dir --constraint constraints.txt /dist/*.whl \
    && /opt/ocync/bin/pip uninstall --yes pip

FROM ${PYTHON_IMAGE}
ARG VERSION=0.1.0
ARG SOURCE=https://github.com/ocync/ocync
LABEL org.opencontainers.image.title="ocync" \
      org.opencontainers.image.description="Mirror OCI container images between registries" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /opt/ocync /opt/ocync
ENV PATH=/opt/ocync/bin:$PATH \
    HOME=/home/ocync \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# The chart mounts the cache volume at /cache and an emptyDir at /tmp; nothing else is written.
VOLUME ["/cache", "/tmp"]
WORKDIR /home/ocync
USER 65532:65532
ENTRYPOINT ["ocync"]
CMD ["--help"]
