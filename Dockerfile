# Multi-stage: build with the Rust toolchain, run on a slim Debian with only the binary.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock rustfmt.toml ./
COPY src src
COPY crates crates
COPY migrations migrations
COPY contracts/out contracts/out
RUN cargo build --release --locked --bin paywatch

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/paywatch /usr/local/bin/paywatch
COPY deploy/paywatch.compose.toml /etc/paywatch/paywatch.toml
VOLUME /var/lib/paywatch
EXPOSE 8080
ENTRYPOINT ["paywatch"]
CMD ["serve", "--config", "/etc/paywatch/paywatch.toml"]
