import { DEFAULT_GRPC_MODEL_ERROR_NAMES, GRPC_CODES, type GrpcCodeName } from '../contract/grpc-codes.js';
import type { Outcome } from '../contract/stats.js';

/**
 * gRPC status codes (grpc/grpc doc/statuscodes.md) and whose failure each is. A failed gRPC
 * call is usually an HTTP 200 whose failure is in the `grpc-status` trailer, so the proxy reads
 * the trailer (or a Trailers-Only answer's headers), never the HTTP status alone.
 */

export const GRPC = Object.fromEntries(GRPC_CODES.map((name, i) => [name, i])) as Record<GrpcCodeName, number>;

/** Is this a gRPC call (application/grpc, +proto, +json; not gRPC-Web, which is HTTP/1 framed)? */
export function isGrpcContentType(contentType: string | string[] | undefined): boolean {
  const ct = Array.isArray(contentType) ? contentType[0] : contentType;
  if (!ct?.startsWith('application/grpc')) return false;
  const next = ct.charCodeAt(16);
  return Number.isNaN(next) || next === 0x2b /* + */ || next === 0x3b /* ; */;
}

/** gRPC's own mapping of an HTTP status without grpc-status (doc/http-grpc-status-mapping.md). */
export function grpcCodeForHttpStatus(status: number): number {
  switch (status) {
    case 200:
      return GRPC.UNKNOWN; // a 200 that ended without grpc-status: the call never completed properly
    case 400:
      return GRPC.INTERNAL;
    case 401:
      return GRPC.UNAUTHENTICATED;
    case 403:
      return GRPC.PERMISSION_DENIED;
    case 404:
      return GRPC.UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504:
      return GRPC.UNAVAILABLE;
    default:
      return GRPC.UNKNOWN;
  }
}

/** A `grpc-status` value as a code, or null when absent or not a code. */
export function parseGrpcStatus(v: string | string[] | undefined): number | null {
  const s = Array.isArray(v) ? v[0] : v;
  if (s === undefined || !/^\d{1,2}$/.test(s)) return null;
  const n = Number(s);
  return n < GRPC_CODES.length ? n : null;
}

/** Which codes are the model's failures; built once per settings object. */
export class GrpcOutcomes {
  private readonly model: boolean[];
  constructor(modelErrors: readonly GrpcCodeName[] = DEFAULT_GRPC_MODEL_ERROR_NAMES) {
    this.model = GRPC_CODES.map((name) => modelErrors.includes(name));
  }

  outcome(code: number): Outcome {
    if (code === GRPC.OK) return 'success';
    if (code === GRPC.DEADLINE_EXCEEDED && this.model[code]) return 'timeout';
    if (this.model[code]) return 'server_error';
    return 'client_error';
  }
}

export const DEFAULT_GRPC_OUTCOMES = new GrpcOutcomes();

const BY_SETTING = new WeakMap<readonly GrpcCodeName[], GrpcOutcomes>();
/** The classifier for a deployment's `grpcModelErrors` setting, built once per route table. */
export function grpcOutcomesFor(modelErrors: readonly GrpcCodeName[] | undefined): GrpcOutcomes {
  if (!modelErrors) return DEFAULT_GRPC_OUTCOMES;
  let o = BY_SETTING.get(modelErrors);
  if (!o) {
    o = new GrpcOutcomes(modelErrors);
    BY_SETTING.set(modelErrors, o);
  }
  return o;
}

export const grpcCodeName = (code: number): GrpcCodeName | 'INVALID' => GRPC_CODES[code] ?? 'INVALID';

/** grpc-message: UTF-8 with every byte outside printable ASCII, and '%', percent-encoded (PROTOCOL-HTTP2.md). */
export function encodeGrpcMessage(message: string): string {
  let out = '';
  for (const byte of Buffer.from(message, 'utf8'))
    out +=
      byte >= 0x20 && byte <= 0x7e && byte !== 0x25
        ? String.fromCharCode(byte)
        : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  return out;
}
