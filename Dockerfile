# syntax=docker/dockerfile:1
# Agentry runtime image: builds the TypeScript, then ships only dist/ and production dependencies.
#
#   docker build -t agentry .
#   docker run -e NATS_URL=… -e DATABASE_URL=… -e AGENTRY_TOKEN=… -p 7070:7070 agentry
#
# The default command runs the example agents; run your own with
#   docker run … agentry start --agents /app/agents/index.js   (mount or COPY your built module)
# See ops/docker-compose.yml and docs/operations.md.

FROM node:20-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
# The inspector UI is optional: serve its build when there is one, a placeholder page otherwise.
RUN npm run build \
 && mkdir -p inspector/dist \
 && npm prune --omit=dev --no-audit --no-fund

FROM node:20-slim
# A 64 MiB young generation: ~20 % less CPU per message (docs/operations.md, "Node's young generation").
ENV NODE_ENV=production \
    NODE_OPTIONS=--max-semi-space-size=64 \
    HOST=0.0.0.0 \
    PORT=7070
WORKDIR /app
COPY --from=build /app/package.json /app/package-lock.json /app/nats.conf ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/inspector/dist ./inspector/dist
# Module hooks for `start --agents <file>.ts` (also needs the typescript package in the image).
COPY --from=build /app/ops/ts-source-hooks.mjs ./ops/ts-source-hooks.mjs
USER node
EXPOSE 7070
# Liveness only; orchestrators should gate traffic on /readyz (NATS, Postgres, migrations).
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 7070) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# HOST=0.0.0.0 makes AGENTRY_TOKEN mandatory: the node refuses to start without it.
ENTRYPOINT ["node", "dist/runtime/cli.js"]
CMD ["start", "--agents", "dist/examples/index.js"]
