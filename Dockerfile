# Zonal dispatcher image (contract: issue 13). Two stages: the build stage has
# a compiler toolchain and dev dependencies, the runtime stage only the program.
#
# Base images are pinned by tag, not by digest: no registry is reachable where
# this file was written, so no digest could be read. Pin `@sha256:...` at the
# first build that has one.

# --- build: compile TypeScript and the native better-sqlite3 module ---------
# The full bookworm image: it has python3, make and g++, which better-sqlite3
# needs when no prebuilt binary can be downloaded.
FROM node:20-bookworm AS build
WORKDIR /app

# node-gyp compiles against the image's own Node headers (the official image
# unpacks them into /usr/local/include/node) instead of downloading them.
ENV npm_config_nodedir=/usr/local

# Everything `npm ci` reads: the manifest and lockfile, and what its `prepare`
# script (`npm run build`) reads: tsc -p tsconfig.build.json (which extends
# tsconfig.json and compiles src/), then a copy of src/admin/heatmap-page into
# dist. proto/ is not compiled but is loaded at run time, so it rides along.
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
COPY src/ ./src/
COPY proto/ ./proto/

# Installs exactly the lockfile (dev dependencies included: typescript), builds
# better-sqlite3, then runs `prepare`, which writes dist/.
RUN npm ci

# Drops the dev dependencies. The optional peer dependencies (better-sqlite3,
# pg, echarts, @opentelemetry/sdk-node) are the dispatcher's drivers: the SQLite
# and PostgreSQL stores, the heatmap page's charts, tracing. package.json lists
# them as dev dependencies only (so an SDK user never builds SQLite), so prune
# would remove them too: they and everything they depend on are set aside
# first and put back after, already built.
RUN npm query "$(node -p "Object.keys(require('./package.json').peerDependencies).map((n) => '#' + n + ', #' + n + ' *').join(', ')")" \
      | node -e "for (const p of JSON.parse(require('node:fs').readFileSync(0, 'utf8'))) console.log(p.location)" > /tmp/peers.txt \
 && tar -cf /tmp/peers.tar -T /tmp/peers.txt \
 && npm prune --omit=dev \
 && tar -xf /tmp/peers.tar \
 && rm /tmp/peers.txt /tmp/peers.tar

# --- runtime: the program, its production modules, nothing else -------------
# slim: no compiler, no python; the native module was built above against the
# same Node 20 and Debian bookworm.
FROM node:20-bookworm-slim

# From package.json (name, description, license; a test keeps them
# equal). No org.opencontainers.image.source: package.json names no repository.
LABEL org.opencontainers.image.title="zonal" \
      org.opencontainers.image.description="Zone-aware gRPC task dispatcher: durable tasks, sequenced bidirectional worker streams, idempotent updates." \
      org.opencontainers.image.licenses="Apache-2.0"

WORKDIR /app
ENV NODE_ENV=production

# Only what `node dist/cli/main.js` reads: the compiled program (with the
# heatmap page's assets), the .proto files it loads at start (found by walking
# up from dist/ to /app/proto), and the production modules. package.json and
# the lockfile say which versions these are. All owned by root: the program
# only reads them.
COPY --from=build /app/package.json /app/package-lock.json ./
COPY --from=build /app/dist/ ./dist/
COPY --from=build /app/proto/ ./proto/
COPY --from=build /app/node_modules/ ./node_modules/

# Where serve keeps its lock, pid file, config snapshot and (by default) the
# SQLite store: its own default, ./data, would be /app/data, which uid 1000
# cannot create. The manifests mount a volume here and pass --data-dir too;
# a bare `docker run` gets an anonymous volume owned by the user below.
ENV ZONAL_DATA_DIR=/var/lib/zonal
RUN mkdir -p /var/lib/zonal && chown 1000:1000 /var/lib/zonal
VOLUME ["/var/lib/zonal"]

# The base image's `node` user, given by number so Kubernetes' runAsNonRoot
# can check it is not root without looking it up.
USER 1000:1000

# 50051 gRPC; 9464 dispatcher admin (/healthz /readyz /metrics); 18000 xDS
# ADS and the endpoint registry; 19464 the xds command's admin port.
EXPOSE 50051 9464 18000 19464

# Exec form: node is PID 1 and receives SIGTERM itself (serve drains on it);
# a shell in between would not pass it on.
ENTRYPOINT ["node", "/app/dist/cli/main.js"]
CMD ["serve"]
