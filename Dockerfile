# anomalyd service image.
#   docker build -t anomalyd:0.1.0 .
#   docker run --rm -p 9108:9108 -e ANOMALYD_BOOTSTRAP_SERVERS=kafka:9092 anomalyd:0.1.0
# Without ANOMALYD_BOOTSTRAP_SERVERS the service starts its embedded broker
# (Tansu, in memory, inside the container): fine for a try-out, not for production.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The project (pinned dependencies in pyproject.toml). README.md is the
# package's readme and must be in the build context (.dockerignore).
COPY pyproject.toml README.md /src/
COPY anomalyd /src/anomalyd
RUN pip install /src && rm -rf /src

# Default rules; mount your own directory (or a ConfigMap) over it.
COPY rules /etc/anomalyd/rules

RUN groupadd --system --gid 10001 anomalyd \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/anomalyd --shell /usr/sbin/nologin anomalyd \
 && mkdir -p /var/lib/anomalyd \
 && chown anomalyd:anomalyd /var/lib/anomalyd

ENV ANOMALYD_RULES_DIR=/etc/anomalyd/rules \
    ANOMALYD_STATE_DIR=/var/lib/anomalyd \
    ANOMALYD_METRICS_HOST=0.0.0.0 \
    ANOMALYD_METRICS_PORT=9108

WORKDIR /var/lib/anomalyd
VOLUME ["/var/lib/anomalyd"]
USER 10001:10001
EXPOSE 9108

# /healthz is 200 while the worker loop turns (slim has no curl: use Python).
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('ANOMALYD_METRICS_PORT', '9108'), timeout=4)"]

# SIGTERM (docker stop) finishes the batch, checkpoints and exits 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["anomalyd"]
CMD ["run"]
