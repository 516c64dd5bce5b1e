# One image for every service: `docker run outbound python -m <service>`.
FROM python:3.11-slim AS build
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PROJECT_ENVIRONMENT=/app/.venv
RUN pip install --no-cache-dir "uv==0.13.9"
WORKDIR /app
COPY pyproject.toml uv.lock README.md ./
COPY libs ./libs
COPY services ./services
# Production image: no dev tools and no embedded broker/database (real Kafka and MongoDB).
RUN uv sync --frozen --no-dev --no-editable

FROM python:3.11-slim
RUN useradd --system --uid 10001 --no-create-home outbound
COPY --from=build /app/.venv /app/.venv
ENV PATH=/app/.venv/bin:$PATH PYTHONUNBUFFERED=1 OUTBOUND_HTTP_HOST=0.0.0.0 \
    OUTBOUND_ENVIRONMENT=production KAFKA_IDEMPOTENT_PRODUCER=true
USER 10001
EXPOSE 8080
CMD ["python", "-m", "campaign_api"]
