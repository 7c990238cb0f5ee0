# The ork-host image: scheduler + REST API with every in-tree plugin. Build from the repository root:
#   docker build -f deploy/host.Dockerfile -t ork-host:0.1 .
# Run: mount a plugins.yaml and a home (state, API keys), create an API key, then serve (docs/deployment.md).
ARG BASE=debian:bookworm-slim

FROM ${BASE} AS build
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      cmake g++ make pkg-config libboost-dev libyaml-cpp-dev nlohmann-json3-dev libspdlog-dev libcli11-dev \
      libcpprest-dev libhowardhinnant-date-dev libssl-dev libpoco-dev libpq-dev \
 && rm -rf /var/lib/apt/lists/*
COPY . /src
RUN cmake -S /src -B /build -DCMAKE_BUILD_TYPE=Release -DORK_BUILD_TESTS=OFF \
 && cmake --build /build -j"$(nproc)" \
 && cmake --install /build --prefix /opt/ork

FROM ${BASE}
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libyaml-cpp0.7 libspdlog1.10 libfmt9 libcpprest2.10 libssl3 libpq5 libsqlite3-0 libpocofoundation80 \
      libpocodatasqlite80 libpocodata80 libdate-tz3 ca-certificates python3 python3-pydantic \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/ork /usr/local
ENV ORK_HOME=/var/lib/ork
VOLUME /var/lib/ork
EXPOSE 4000
# Binding beyond 127.0.0.1 needs an API key: `ork-host apikey create --scope admin` against the same home first.
CMD ["/usr/local/bin/ork-host", "serve", "--bind", "0.0.0.0", "--port", "4000"]
