# One image for the four services; docker-compose.yml chooses the service with its command:
#   python -m services.registry | services.gateway | services.executor | services.scheduler
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --system --gid 10001 worklets \
    && useradd --system --uid 10001 --gid worklets --home-dir /app --shell /usr/sbin/nologin worklets

WORKDIR /app

COPY pyproject.toml README* ./
COPY shared ./shared
COPY services ./services
COPY cli ./cli
COPY web ./web
RUN pip install . \
    && mkdir -p /run/worklets \
    && chown worklets:worklets /run/worklets

USER worklets

# The gateway listens on 8000, the registry on 8001 (WORKLETS_PORT).
EXPOSE 8000 8001

CMD ["python", "-m", "services.gateway"]
