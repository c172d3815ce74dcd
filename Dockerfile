# syntax=docker/dockerfile:1
#
# pull-secret-injector: a static (musl) binary on distroless, running as
# nonroot (65532, the user the Deployment's securityContext names).
#
#   docker build -t ghcr.io/example/pull-secret-injector:0.1.0 .

# The crate's rust-version (Cargo.toml).
ARG RUST_VERSION=1.89

FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS build
ARG TARGET=x86_64-unknown-linux-musl
# musl-gcc compiles ring's C and assembly for the musl target.
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/* \
 && rustup target add "${TARGET}"
WORKDIR /src
# The whole context (see .dockerignore): Cargo.toml names bench and example
# targets whose files must exist for cargo to read the manifest.
COPY . .
# The caches keep downloaded crates and compiled dependencies between builds;
# the binary is copied out because the target cache is not part of the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --target "${TARGET}" --bin pull-secret-injector \
 && cp "target/${TARGET}/release/pull-secret-injector" /pull-secret-injector

# Static binary: no libc, no shell needed. CA certificates and /etc/passwd
# (nonroot = 65532) come with the base image.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /pull-secret-injector /pull-secret-injector
USER 65532:65532
EXPOSE 8443 9090
ENTRYPOINT ["/pull-secret-injector"]
CMD ["serve", "--help"]
