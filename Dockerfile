# The canary-mesh image: every canary-mesh service in compose.yaml runs it with a different
# command (`canary control-plane`, `canary proxy`, `canary model-server ...`).

FROM node:24-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# Runtime dependencies only; the xDS types are generated in the final stage.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

FROM node:24-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY bin ./bin
COPY cli ./cli
COPY common ./common
COPY control-plane ./control-plane
COPY proxy ./proxy
COPY model-servers ./model-servers
COPY scripts ./scripts
RUN node scripts/generate-xds-types.mjs && mkdir -p /data && chown node:node /data
USER node
ENV CANARY_DATA_DIR=/data
ENTRYPOINT ["node", "bin/canary.js"]
CMD ["help"]
