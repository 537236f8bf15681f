# Quillmail in a container: `quill start` (every protocol in one process) by default, or a
# cluster node (`quill node --id …`) or a gateway (`quill gateway …`) with other arguments.
# See docs/deploy.md. Build: docker build -t quillmail .

# --- build: compile the TypeScript and the web app, and better-sqlite3's addon from source ---
FROM node:20-bookworm-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# Build the SQLite addon from source for this image's Node and glibc (no prebuilt download).
ENV npm_config_build_from_source=true
# Dependencies first, so a source change does not reinstall them. Scripts run after the
# sources are in (the package's own `prepare` is the build), except the two addons'.
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund \
 && npm rebuild better-sqlite3 esbuild
COPY . .
RUN npm run build \
 && npm prune --omit=dev --ignore-scripts --no-audit --no-fund

# --- runtime: Node, the built code and the production dependencies only, as a non-root user ---
FROM node:20-bookworm-slim
ENV NODE_ENV=production
RUN groupadd --system quill \
 && useradd --system --gid quill --home-dir /var/lib/quill --shell /usr/sbin/nologin quill \
 && mkdir -p /var/lib/quill /etc/quill \
 && chown quill:quill /var/lib/quill
WORKDIR /opt/quill
COPY --from=build /app/package.json /app/package-lock.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/bin ./bin
COPY docs/quill.example.yaml /etc/quill/quill.example.yaml
RUN ln -s /opt/quill/bin/quill.js /usr/local/bin/quill

USER quill
# SQLite store, generated TLS certificate; nothing here with store.url (PostgreSQL) and tls: set.
VOLUME /var/lib/quill
# SMTP (MX), submission, POP3, IMAP, HTTP (web app, API, /healthz, /readyz, /metrics).
EXPOSE 2525 2587 2110 2143 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s \
  CMD node -e "fetch('http://127.0.0.1:8080/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"
ENTRYPOINT ["node", "/opt/quill/bin/quill.js"]
CMD ["start", "--data", "/var/lib/quill", "--smtp", "0.0.0.0:2525", "--submission", "0.0.0.0:2587", "--pop3", "0.0.0.0:2110", "--imap", "0.0.0.0:2143", "--http", "0.0.0.0:8080"]
