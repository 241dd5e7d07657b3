/**
 * gRPC status codes (grpc/grpc doc/statuscodes.md), by number, as the stats contract counts
 * them: a cell's `grpc` array holds one count per code (Redis fields q0…q16), and readers see the
 * non-zero ones by name per variant.
 */
export const GRPC_CODES = [
  'OK',
  'CANCELLED',
  'UNKNOWN',
  'INVALID_ARGUMENT',
  'DEADLINE_EXCEEDED',
  'NOT_FOUND',
  'ALREADY_EXISTS',
  'PERMISSION_DENIED',
  'RESOURCE_EXHAUSTED',
  'FAILED_PRECONDITION',
  'ABORTED',
  'OUT_OF_RANGE',
  'UNIMPLEMENTED',
  'INTERNAL',
  'UNAVAILABLE',
  'DATA_LOSS',
  'UNAUTHENTICATED',
] as const;
export type GrpcCodeName = (typeof GRPC_CODES)[number];

/**
 * The model's failures by default: the server broke, is overloaded, lacks a method the
 * baseline serves (UNIMPLEMENTED), or missed the deadline the proxy passed on. Every other
 * code but OK is the caller's (a bad tensor, a missing model name, auth); CANCELLED by the
 * client is an abort.
 */
export const DEFAULT_GRPC_MODEL_ERROR_NAMES: readonly GrpcCodeName[] = [
  'UNKNOWN',
  'DEADLINE_EXCEEDED',
  'RESOURCE_EXHAUSTED',
  'UNIMPLEMENTED',
  'INTERNAL',
  'UNAVAILABLE',
  'DATA_LOSS',
];

/** gRPC calls of a version by status code name (only codes seen). */
export type GrpcCounts = Partial<Record<GrpcCodeName, number>>;

export const noGrpcCodes = (): number[] => new Array(GRPC_CODES.length).fill(0);

export function addGrpcCodes(into: number[], from: number[]): void {
  for (let i = 0; i < GRPC_CODES.length; i++) into[i] += from[i] ?? 0;
}

/** The Redis hash field of a code's count ("q14" for UNAVAILABLE), or null for other fields. */
export const grpcRedisField = (code: number) => `q${code}`;
export function grpcCodeOfRedisField(field: string): number | null {
  if (field[0] !== 'q') return null;
  const n = Number(field.slice(1));
  return Number.isInteger(n) && n >= 0 && n < GRPC_CODES.length ? n : null;
}

/** The non-zero counts by name, or undefined when no gRPC call was counted. */
export function grpcCounts(codes: number[] | undefined): GrpcCounts | undefined {
  if (!codes) return undefined;
  const out: GrpcCounts = {};
  let any = false;
  codes.forEach((n, i) => {
    if (n > 0) {
      out[GRPC_CODES[i]] = n;
      any = true;
    }
  });
  return any ? out : undefined;
}
