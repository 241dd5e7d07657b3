/**
 * One place for the stable error codes users and scripts see. Every API and proxy error
 * body is `{error: {code, message}}`; the code never changes once published.
 */
export const ERRORS = {
  // proxy data plane
  UNKNOWN_DEPLOYMENT: { status: 404, doc: 'no route for this deployment' },
  BAD_REQUEST_TARGET: { status: 400, doc: 'the request path could not be parsed' },
  BODY_TOO_LARGE: { status: 413, doc: 'the request body exceeds the configured limit' },
  UPSTREAM_TIMEOUT: { status: 504, doc: 'the model server did not answer in time' },
  UPSTREAM_UNAVAILABLE: { status: 502, doc: 'the model server refused or reset the connection' },
  UPSTREAM_BAD_RESPONSE: { status: 502, doc: 'the model server sent a response that is not valid HTTP' },
  REQUEST_TIMEOUT: { status: 408, doc: 'the client did not send its request headers or body in time' },
  PROTOCOL_MISMATCH: {
    status: 502,
    doc: 'a gRPC call was routed to a version served over HTTP/1.1; register it with an h2c:// URL',
  },
  TOO_MANY_CONNECTIONS: { status: 503, doc: 'the proxy is at CANARY_MAX_CONNECTIONS client connections' },
  // control plane API
  BAD_REQUEST: { status: 400, doc: 'the request body or parameters are invalid' },
  UNAUTHORIZED: { status: 401, doc: 'a bearer token is required' },
  FORBIDDEN: { status: 403, doc: 'the bearer token is wrong' },
  FORBIDDEN_ORIGIN: {
    status: 403,
    doc: 'the request comes from a web page on another origin (CSRF defence; see CANARY_ALLOWED_ORIGINS)',
  },
  FORBIDDEN_HOST: {
    status: 403,
    doc: 'the Host header does not name this API (DNS-rebinding defence; see CANARY_ALLOWED_HOSTS)',
  },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, doc: 'changes must be sent as application/json' },
  UPSTREAM_NOT_ALLOWED: {
    status: 400,
    doc: 'the URL points at an address canary-mesh never connects to (link-local, cloud metadata, the stack itself) or outside CANARY_UPSTREAM_ALLOW',
  },
  VERSION_IN_USE: { status: 409, doc: 'the version is serving or is the running canary; it cannot be deleted' },
  SINK_NOT_FOUND: { status: 404, doc: 'no alert sink with this id' },
  VERSION_FAILED: {
    status: 409,
    doc: 'the version was rolled back or judged critical; pass force: true to use it anyway',
  },
  NOT_READY: { status: 503, doc: 'a dependency (database, Redis) is not reachable' },
  NOT_FOUND: { status: 404, doc: 'no such route' },
  DEPLOYMENT_NOT_FOUND: { status: 404, doc: 'no deployment with this name' },
  VERSION_NOT_FOUND: { status: 404, doc: 'no such version registered for this deployment' },
  DEPLOYMENT_EXISTS: { status: 409, doc: 'a deployment with this name already exists' },
  VERSION_EXISTS: { status: 409, doc: 'this version is already registered with another url' },
  CANARY_RUNNING: { status: 409, doc: 'a canary is already running for this deployment' },
  NO_CANARY: { status: 409, doc: 'no canary is running for this deployment' },
  NOTHING_TO_APPROVE: { status: 409, doc: 'nothing of this deployment waits for approval (policy.approvals)' },
  LINK_INVALID: { status: 400, doc: 'an approval link that was altered, or not made by this control plane' },
  LINK_EXPIRED: { status: 410, doc: 'an approval link past its expiry' },
  LINK_USED: { status: 409, doc: 'an approval link that has already approved' },
  LINK_SUPERSEDED: { status: 409, doc: 'an approval link for a step or canary that no longer waits' },
  NO_ROLLBACK_TARGET: { status: 409, doc: 'no earlier healthy version to roll back to' },
  CONFLICT: { status: 409, doc: 'another change to this deployment happened at the same time' },
  CANARY_MISMATCH: { status: 409, doc: 'the request names a canary that is not the one running' },
  PRECONDITION_FAILED: { status: 412, doc: 'If-Match names a revision of the deployment that is no longer current' },
  METRICS_UNAVAILABLE: { status: 503, doc: 'the metrics source could not be read' },
  INTERNAL: { status: 500, doc: 'an unexpected error' },
} as const;

export type ErrorCode = keyof typeof ERRORS;

export class CanaryError extends Error {
  readonly status: number;
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
    this.status = ERRORS[code].status;
  }
  toJSON(): { error: { code: ErrorCode; message: string } } {
    return { error: { code: this.code, message: this.message } };
  }
}

export function errorBody(code: ErrorCode, message: string): string {
  return JSON.stringify({ error: { code, message } });
}
