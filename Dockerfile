# syntax=docker/dockerfile:1
# One image for every service: `docker run IMAGE serve contacts`, `… migrate contacts upgrade`.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN pip install --no-cache-dir uv==0.13.9
WORKDIR /src
# The dependencies alone first, exactly as uv.lock has them (no dev extra): this
# layer is rebuilt only when the lock changes, not with every source edit.
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-dev --no-install-project --no-editable
# Then the project itself, installed into the environment (not editable), so the
# runtime stage needs the environment only.
COPY README.md ./
COPY src ./src
RUN uv sync --frozen --no-dev --no-editable

FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 lkern \
    && useradd --system --uid 10001 --gid lkern --home-dir /var/lib/lkern --shell /usr/sbin/nologin lkern \
    && install --directory --owner lkern --group lkern /var/lib/lkern
COPY --from=build /app/.venv /app/.venv
COPY --chmod=0755 deploy/docker/healthcheck.py /usr/local/bin/lkern-healthcheck
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    LKERN_HOST=0.0.0.0 \
    LKERN_DATA_DIR=/var/lib/lkern
WORKDIR /var/lib/lkern
# A numeric user, so Kubernetes can verify runAsNonRoot.
USER 10001:10001
# REST 8100-8104, gRPC 5100, 5101, 5104 (SPEC §1); each container serves one of them.
EXPOSE 8099 8100 8101 8102 8103 8104 5100 5101 5104
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 CMD ["lkern-healthcheck"]
ENTRYPOINT ["lkern"]
CMD ["--help"]
