# The ork-worker image: what exec-docker (and the cloud executors) run for shell, python, cpp and rust tasks.
# Contract: docs/containers.md. Build from the repository root:
#   docker build -f deploy/worker.Dockerfile -t ork-worker:0.1 .
# BASE must be a Debian bookworm image (debian:bookworm-slim, or one imported locally, see docs/containers.md).
ARG BASE=debian:bookworm-slim

FROM ${BASE} AS build
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      cmake g++ make pkg-config libboost-dev libyaml-cpp-dev nlohmann-json3-dev libspdlog-dev libcli11-dev \
      libcpprest-dev libhowardhinnant-date-dev libssl-dev libpoco-dev libpq-dev \
 && rm -rf /var/lib/apt/lists/*
COPY . /src
# The worker, the object-store plugins it loads (local, S3, GCS, Azure) and the SDKs; no host, no tests.
RUN cmake -S /src -B /build -DCMAKE_BUILD_TYPE=Release -DORK_BUILD_TESTS=OFF -DORK_BUILD_STATE_POSTGRES=OFF \
 && cmake --build /build -j"$(nproc)" --target ork-worker ork-object-local ork-object-s3 ork-object-gcs ork-object-azure \
 && install -D -m 0755 /build/bin/ork-worker /opt/ork/bin/ork-worker \
 && mkdir -p /opt/ork/lib/ork/plugins /opt/ork/share/ork/python /opt/ork/include \
 && cp /build/lib/libork-object-*.so /opt/ork/lib/ork/plugins/ \
 && cp -r /src/sdk/python/ork /opt/ork/share/ork/python/ \
 && cp -r /src/sdk/include/ork /opt/ork/include/

FROM ${BASE}
# Runtime libraries of ork-worker and the object plugins, Python 3 with pydantic for python tasks, and a compiler
# for cpp tasks (drop g++ for a smaller image without cpp tasks).
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libyaml-cpp0.7 libspdlog1.10 libfmt9 libcpprest2.10 libssl3 ca-certificates \
      python3 python3-pydantic g++ nlohmann-json3-dev \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/ork /usr/local
ENV ORK_PYTHON=/usr/bin/python3 ORK_SDK_INCLUDE=/usr/local/include
# No ENTRYPOINT: executors set the command (exec-docker: worker_command, default /usr/local/bin/ork-worker).
WORKDIR /tmp
CMD ["/usr/local/bin/ork-worker"]
