# syntax=docker/dockerfile:1
# keygate container image: build with the full toolchain, run with production dependencies
# only, as a non-root user. See docs/container.md (mounts, environment, Kubernetes sidecar).
#
#   docker build -t keygate .
#   docker run --rm -p 8443:8443 -e KEYGATE_HOST=0.0.0.0 -v "$PWD/keygate:/etc/keygate" keygate
#
# Node 20 LTS (the engines field asks for >= 20.18.1) on Debian 12 slim rather than Alpine:
# the official Node binaries are built for glibc, and it is the platform the benchmarks ran on.
ARG NODE_IMAGE=node:20-bookworm-slim

# ---- build: TypeScript -> dist/ -----------------------------------------------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /src
# Dependencies first, so that a source change does not reinstall them. --ignore-scripts: the
# package's own `prepare` (tsc) would run before the sources are copied; no dependency of
# keygate needs an install script.
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
RUN npm run build

# ---- runtime --------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
# Production dependencies only. --ignore-scripts, because `prepare` runs tsc, which is a dev
# dependency and not installed here (dist/ comes from the build stage instead).
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
 && npm cache clean --force
COPY --from=build /src/dist ./dist
# The annotated example config, for reference; the image runs /etc/keygate/keygate.yaml, which
# you mount (docs/container.md).
COPY config/keygate.yaml ./config/keygate.yaml
# `keygate …` on PATH for `docker exec` (management commands). /etc/keygate holds the mounted
# config, certificates and credential file; keygate writes next to the credential file
# (last-use times, lock files), so the folder belongs to the runtime user when it is not a
# read-only mount.
RUN chmod 0755 /app/dist/cli/keygate.js \
 && ln -s /app/dist/cli/keygate.js /usr/local/bin/keygate \
 && mkdir -p /etc/keygate && chown 1000:1000 /etc/keygate
# The `node` user (uid 1000) ships with the official image; numeric, so that Kubernetes'
# runAsNonRoot can verify it without reading /etc/passwd.
USER 1000:1000
EXPOSE 8443 9090
# Liveness of the process as Docker sees it: the admin listener's /healthz, with nothing but
# Node (node:http is lighter to start than fetch). Assumes the admin listener on its default
# 127.0.0.1:9090, inside the container's own network namespace; set KEYGATE_HEALTH_URL when
# your config moves it, or run with --no-healthcheck.
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "require('http').get(process.env.KEYGATE_HEALTH_URL||'http://127.0.0.1:9090/healthz',r=>process.exit(r.statusCode===200?0:1)).on('error',()=>process.exit(1))"]
# SIGTERM drains (readiness 503, in-flight requests finish within shutdown.drainTimeout, exit
# 0). Node runs as PID 1: the kernel delivers no default action to PID 1, which is fine because
# keygate installs its own SIGTERM, SIGINT and SIGHUP handlers and starts no child processes
# (so no zombies to reap, and no need for --init).
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "/app/dist/cli/keygate.js"]
CMD ["serve", "-c", "/etc/keygate/keygate.yaml"]
