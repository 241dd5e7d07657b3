/** JSON schemas of the request bodies and parameters: they validate requests and make the OpenAPI document. */

export const nameParam = {
  type: 'object',
  properties: { name: { type: 'string', minLength: 1, maxLength: 63 } },
  required: ['name'],
} as const;

export const upstream = {
  type: 'object',
  required: ['version', 'url'],
  additionalProperties: false,
  properties: { version: { type: 'string' }, url: { type: 'string' }, metadata: { type: 'object' } },
} as const;
/** `canary` in a body names the canary the caller means: another one running is 409 CANARY_MISMATCH. */

export const canaryField = { canary: { type: 'string', minLength: 1 } } as const;

export const reasonBody = {
  type: ['object', 'null'],
  additionalProperties: false,
  properties: { reason: { type: 'string', maxLength: 2000 }, ...canaryField },
} as const;

export const rollbackBody = {
  type: ['object', 'null'],
  additionalProperties: false,
  properties: {
    reason: { type: 'string', maxLength: 2000 },
    target: { type: 'string', enum: ['canary', 'baseline'] },
    toVersion: { type: 'string' },
    force: { type: 'boolean' },
    ...canaryField,
  },
} as const;

export const canaryOnlyBody = {
  type: ['object', 'null'],
  additionalProperties: false,
  properties: { ...canaryField },
} as const;

/** A deployment's data-plane settings (checked in detail by resolveSettings, which names the field). */
export const settingsFields = {
  retryCanaryOnBaseline: { type: 'boolean' },
  timeouts: {
    type: 'object',
    additionalProperties: false,
    properties: { headers: { type: ['string', 'number'] }, idle: { type: ['string', 'number'] } },
  },
  hedgeCanaryAfter: { type: ['string', 'number'] },
  retryMethods: { type: 'array', items: { type: 'string' } },
  grpcModelErrors: { type: 'array', items: { type: 'string' } },
  websockets: { type: 'boolean' },
  allowForcedVariant: { type: 'boolean' },
  health: {
    type: 'object',
    additionalProperties: false,
    required: ['path'],
    properties: { path: { type: ['string', 'null'] } },
  },
  pricing: {
    type: ['object', 'null'],
    additionalProperties: false,
    required: ['inputPer1M', 'outputPer1M'],
    properties: { inputPer1M: { type: 'number' }, outputPer1M: { type: 'number' } },
  },
  sticky: {
    type: ['object', 'null'],
    additionalProperties: false,
    required: ['cookie'],
    properties: { cookie: { type: 'string' }, ttl: { type: ['string', 'number'] } },
  },
} as const;
