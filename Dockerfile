# syntax=docker/dockerfile:1
# Build stage: the wheel of the service (it carries sql/ and policies/templates/) and the
# wheels of its dependencies.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY controlplane ./controlplane
COPY sql ./sql
COPY policies ./policies
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

# Runtime stage: the wheels installed offline, no source tree, a non-root user.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
RUN groupadd --system --gid 10001 caracal \
    && useradd --system --uid 10001 --gid caracal --home-dir /data --no-create-home caracal \
    && mkdir /data && chown caracal:caracal /data
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels /wheels/controlplane-*.whl
USER 10001:10001
WORKDIR /data
ENV CARACAL_HOST=0.0.0.0 CARACAL_PORT=3000 CARACAL_DATA_DIR=/data
EXPOSE 3000
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
    CMD ["python", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:3000/health').status == 200 else 1)"]
CMD ["caracal", "serve"]
