# syntax=docker/dockerfile:1
# keygate container image: build and pack with the full toolchain, then install the packed
# package with production dependencies only and run it as a non-root user. See
# docs/container.md (mounts, environment, read-only root file system) and docs/kubernetes.md.
#
#   docker build -t keygate .
#   docker run --rm -p 8443:8443 -v "$PWD/deploy/docker:/etc/keygate:ro" -v keygate-data:/var/lib/keygate keygate
#
# Node 24, the Active LTS line, on Debian 12 slim rather than Alpine: the official Node
# binaries are built for glibc. keygate also runs on Node 20.18.1 and later (engines in
# package.json); the test suite runs on both (.ci/run).
ARG NODE_IMAGE=node:24-bookworm-slim

# ---- build: TypeScript -> dist/, then the npm package ----------------------------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /src
# Dependencies first, so that a source change does not reinstall them. --ignore-scripts: the
# package's own `prepare` (tsc) would run before the sources are copied; no dependency of
# keygate needs an install script.
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json README.md CHANGELOG.md ./
COPY src ./src
COPY config/keygate.yaml ./config/keygate.yaml
COPY docs ./docs
# The runtime stage installs exactly what `npm pack` ships (the `files` of package.json), the
# same tarball test/deploy/runtime-stage.test.ts installs and runs.
RUN npm run build \
 && npm pack --ignore-scripts --pack-destination /pkg \
 && mv /pkg/keygate-*.tgz /pkg/keygate.tgz

# ---- runtime --------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS runtime
# KEYGATE_CONFIG: the config every command uses without -c (serve, and `docker exec keygate
# keygate token list`); without it a command run in /app would read the package's example.
ENV NODE_ENV=production \
    KEYGATE_CONFIG=/etc/keygate/keygate.yaml
WORKDIR /app
COPY package-lock.json ./
# The package, then its production dependencies at the versions of the lock file.
# --ignore-scripts: `prepare` runs tsc, a dev dependency; dist/ is already in the package.
# The tarball comes in through a bind mount, so no layer keeps a copy of it.
RUN --mount=type=bind,from=build,source=/pkg,target=/pkg \
    tar -xzf /pkg/keygate.tgz --strip-components=1 -C /app \
 && npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
 && npm cache clean --force \
 && chmod 0755 /app/dist/cli/keygate.js \
 && ln -s /app/dist/cli/keygate.js /usr/local/bin/keygate \
 && mkdir -p /etc/keygate /var/lib/keygate \
 && chown 1000:1000 /var/lib/keygate
# /etc/keygate: the config, TLS files and client CA, mounted (read-only is fine).
# /var/lib/keygate: the credential file of deploy/docker/keygate.yaml, written by the CLI, the
# admin API and the last-use flush (with a lock file next to it): mount a volume there. Nothing
# else is written, so the root file system can be read-only (docker run --read-only).
# The `node` user (uid 1000) ships with the official image; numeric, so that Kubernetes'
# runAsNonRoot can verify it without reading /etc/passwd.
USER 1000:1000
EXPOSE 8443 9090
# Liveness of the process as Docker sees it: the admin listener's /healthz, with nothing but
# Node (no curl or wget in the image; node:http is lighter to start than fetch). Assumes the
# admin listener on its default 127.0.0.1:9090, inside the container's own network namespace;
# set KEYGATE_HEALTH_URL when your config moves it, or run with --no-healthcheck.
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "require('http').get(process.env.KEYGATE_HEALTH_URL||'http://127.0.0.1:9090/healthz',r=>process.exit(r.statusCode===200?0:1)).on('error',()=>process.exit(1))"]
# SIGTERM drains (readiness 503, in-flight requests finish within shutdown.drainTimeout, exit
# 0). Node runs as PID 1: the kernel delivers no default action to PID 1, which is fine because
# keygate installs its own SIGTERM, SIGINT and SIGHUP handlers and starts no child processes
# (so no zombies to reap, and no need for --init). There is no `kill` binary to rely on for
# SIGHUP: `docker kill -s HUP`, or `node -e 'process.kill(1,"SIGHUP")'` inside the container.
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "/app/dist/cli/keygate.js"]
CMD ["serve"]
