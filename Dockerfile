# Production image: slim, non-root, runs the Telegram bot.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

COPY pyproject.toml README.md ./
COPY bot ./bot
COPY handlers ./handlers
COPY knowledge_base ./knowledge_base
COPY storage ./storage
RUN pip install . && useradd --system --uid 10001 --home /app bot && mkdir -p /app/data && chown bot /app/data

USER bot
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)" || exit 1
CMD ["python", "-m", "bot", "run"]
