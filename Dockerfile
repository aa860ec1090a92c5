# Portero in a container: `docker build -t portero .` (or `podman build`), then
#   docker run -d -p 8080:8080 -v portero-data:/data portero
# The SQLite database and the master key file beside it (portero.db.key) live in the /data
# volume: back it up. Admin commands run in the same container against the same file:
#   docker exec CONTAINER portero tenant create acme
# Settings are PORTERO_* variables (`-e PORTERO_ISSUER=https://auth.example.com`) or a
# configuration file: /data/portero.toml is read when it exists (/data is the working
# directory), or name one with `-e PORTERO_CONFIG=/path/in/the/container.toml`.

# Build stage: the same toolchain the workspace asks for (rust-version in Cargo.toml), on the
# Debian release the runtime image is built from, so the binary's glibc matches.
FROM docker.io/library/rust:1.94-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p portero \
    && strip target/release/portero \
    && mkdir -p /out/data \
    && cp target/release/portero /out/portero

# Runtime stage: glibc, libgcc and CA certificates, no shell, no package manager; runs as the
# image's unprivileged `nonroot` user (uid 65532).
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/portero /usr/local/bin/portero
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
WORKDIR /data
ENV PORTERO_LISTEN=0.0.0.0:8080 \
    PORTERO_DATABASE_URL=sqlite:///data/portero.db \
    PORTERO_LOG_FORMAT=json
VOLUME ["/data"]
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/portero"]
CMD ["serve"]
