# Conduit in a small image: built in a Rust image, run as a non-root user in a slim Debian with
# only CA certificates. The playground's bundle is committed (playground/dist), so no Node step.
#   docker build -t conduit .
#   docker run -p 8080:8080 -e DATABASE_URL=postgres://… -e CONDUIT_JWT_SECRET=… conduit
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin conduit \
 && strip target/release/conduit

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin conduit
COPY --from=build /src/target/release/conduit /usr/local/bin/conduit
USER 10001:10001
ENV CONDUIT_LISTEN=0.0.0.0:8080 \
    CONDUIT_ENV=production \
    CONDUIT_LOG_FORMAT=json
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=2s CMD curl -fs http://127.0.0.1:8080/health/live || exit 1
ENTRYPOINT ["/usr/local/bin/conduit"]
CMD ["serve"]
