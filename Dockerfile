# foretell: multi-stage build, non-root runtime.
#   docker build -t foretell .
#   docker run -p 9896:9896 -v $PWD/foretell.yml:/etc/foretell/foretell.yml:ro foretell
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin foretell \
 && strip target/release/foretell

FROM debian:bookworm-slim
# OCI labels; VERSION and REVISION come from the build:
#   docker build --build-arg VERSION=0.1.0 --build-arg REVISION=$(git rev-parse HEAD) -t foretell .
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="foretell" \
      org.opencontainers.image.description="Forecasts, baselines and anomaly scores for Prometheus series, served as metrics; Alertmanager alerts with a confidence score; a signed audit log" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="https://github.com/foretell/foretell" \
      org.opencontainers.image.licenses="Apache-2.0"
# CA certificates for an HTTPS Prometheus or receivers; nothing else is needed at run time.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 65532 foretell \
 && useradd --system --uid 65532 --gid 65532 --home-dir /var/lib/foretell --create-home foretell
COPY --from=build /src/target/release/foretell /usr/local/bin/foretell
COPY docs/foretell.example.yml /usr/share/foretell/foretell.example.yml
USER 65532:65532
WORKDIR /var/lib/foretell
# The audit log and the outbox live here: mount a volume so they survive the container.
VOLUME ["/var/lib/foretell"]
EXPOSE 9896
ENTRYPOINT ["/usr/local/bin/foretell"]
CMD ["run", "--config.file", "/etc/foretell/foretell.yml", "--log.format", "json"]
