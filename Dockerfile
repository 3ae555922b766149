# fogd itself, for compose.yaml (`docker compose up --build`). Without a registry,
# build on a local base: docker build --build-arg BASE_IMAGE=<local python image> .
ARG BASE_IMAGE=python:3.12-slim
FROM ${BASE_IMAGE}
WORKDIR /opt/fogd
COPY pyproject.toml README.md fogd.toml ./
COPY fogd ./fogd
COPY node_agent ./node_agent
RUN python3 -m pip install --no-cache-dir . && rm -rf /root/.cache
# In a container fogd must listen beyond loopback; with [auth] off (the default),
# publish its port only where you trust the network (compose publishes 127.0.0.1),
# or turn auth on (README, "Trust: tokens, TLS, ...").
ENV FOGD_LISTEN=0.0.0.0:8000 \
    FOGD_ALLOW_REMOTE=true \
    FOGD_DATA_DIR=/var/lib/fogd \
    PYTHONUNBUFFERED=1
VOLUME /var/lib/fogd
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
    CMD python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"
CMD ["fogd", "serve"]
