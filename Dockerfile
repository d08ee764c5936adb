# The kapparec image: one image, three roles chosen by the command
# (`kapparec worker`, `kapparec serve`, `kapparec topics`). Used by infra/compose.yaml and
# infra/k8s/. Build: docker build -t kapparec:0.1.0 .
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY streams ./streams
COPY agents ./agents
COPY infra ./infra
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
# librdkafka ships inside the confluent-kafka wheel; nothing else is needed at run time.
RUN useradd --system --uid 10001 --home-dir /var/lib/kapparec --create-home kapparec
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER 10001
WORKDIR /var/lib/kapparec
ENV KAPPAREC_STATE_DIR=/var/lib/kapparec \
    KAPPAREC_LOG_LEVEL=info \
    PYTHONUNBUFFERED=1
ENTRYPOINT ["kapparec"]
CMD ["worker"]
