# One image for every role: conflictscope coordinator | worker | aggregator | run | ...
#   docker build -t conflictscope .
# The config is mounted at /etc/conflictscope/config.toml (a ConfigMap in k8s/), the SQLite store
# lives on a volume at /var/lib/conflictscope, and secrets come only from the environment.

# Build stage: the official Swift 6.3.1 image on Debian 12, plus the C libraries' headers.
FROM swift:6.3.1-bookworm AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        libhiredis-dev \
        librabbitmq-dev \
        libsqlite3-dev \
        pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Package.swift ./
COPY Sources ./Sources
# Not built, but the manifest declares the test targets and SwiftPM wants their folders.
COPY Tests ./Tests
# --static-swift-stdlib links the Swift runtime and Foundation into the binary, so the runtime
# stage needs no Swift libraries. The resource bundle (prompt templates, value sets) must sit
# next to the binary: Bundle.module looks for it in the executable's directory. Stripping the
# debug info (not the symbols, which backtraces use) takes the binary from ~170 MB to ~110 MB.
RUN swift build -c release --product conflictscope --static-swift-stdlib \
    && bin="$(swift build -c release --show-bin-path)" \
    && mkdir -p /out \
    && cp "$bin/conflictscope" /out/ \
    && strip --strip-debug /out/conflictscope \
    && cp -R "$bin/conflictscope_ConflictScope.resources" /out/

# Runtime stage: Debian 12 with only the shared libraries the binary links (ldd), CA certificates
# for HTTPS to providers, and stunnel, which the pods run as their TLS tunnel to Redis (hiredis 0.14
# has no TLS). cluster/image-check installs exactly this package list.
FROM debian:bookworm-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        ca-certificates \
        libgcc-s1 \
        libhiredis0.14 \
        librabbitmq4 \
        libsqlite3-0 \
        libstdc++6 \
        stunnel4 \
        zlib1g \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --no-create-home \
        --home-dir /var/lib/conflictscope --shell /usr/sbin/nologin conflictscope \
    && install -d -o conflictscope -g conflictscope /var/lib/conflictscope /etc/conflictscope
COPY --from=build /out/ /usr/local/bin/
USER 10001:10001
WORKDIR /var/lib/conflictscope
EXPOSE 9090
ENTRYPOINT ["conflictscope"]
CMD ["--help"]
