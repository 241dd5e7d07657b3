import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import protobuf from 'protobufjs';
import { PROTO_FILES, PROTO_INCLUDE_DIRS } from './protos.js';

// google/protobuf/*.proto: protobufjs ships the ones it does not build in (descriptor.proto).
const PROTOBUFJS_DIR = path.dirname(createRequire(import.meta.url).resolve('protobufjs/package.json'));

/**
 * Turns the snapshot builder's plain objects into protobuf bytes, packing every
 * `{ '@type': url, ... }` into a google.protobuf.Any on the way. Loading the protos is the
 * slow part (~1 s), so it happens once.
 */
let root: protobuf.Root | null = null;

export function protoRoot(): protobuf.Root {
  if (root) return root;
  const r = new protobuf.Root();
  r.resolvePath = (_origin, target) => {
    for (const dir of [...PROTO_INCLUDE_DIRS, PROTOBUFJS_DIR]) {
      const full = path.join(dir, target);
      if (existsSync(full)) return full;
    }
    return target; // the rest of google/protobuf/*: built into protobufjs
  };
  r.loadSync(PROTO_FILES, { keepCase: true });
  r.resolveAll();
  root = r;
  return r;
}

const typeName = (url: string) => url.slice(url.lastIndexOf('/') + 1);

/** Replaces nested `{ '@type' }` objects by packed Any values, for fromObject(). */
function packAnys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(packAnys);
  if (!value || typeof value !== 'object' || Buffer.isBuffer(value)) return value;
  const obj = value as Record<string, unknown>;
  if (typeof obj['@type'] === 'string') {
    const { '@type': url, ...rest } = obj as { '@type': string };
    return { type_url: url, value: encode(url, rest) };
  }
  return Object.fromEntries(Object.entries(obj).map(([k, v]) => [k, packAnys(v)]));
}

export function encode(typeUrl: string, message: Record<string, unknown>): Buffer {
  const T = protoRoot().lookupType(typeName(typeUrl));
  const packed = packAnys(message) as Record<string, unknown>;
  const err = T.verify(T.fromObject(packed));
  if (err) throw new Error(`${typeName(typeUrl)}: ${err}`);
  return Buffer.from(T.encode(T.fromObject(packed)).finish());
}

export function decode(typeUrl: string, bytes: Uint8Array): Record<string, unknown> {
  const T = protoRoot().lookupType(typeName(typeUrl));
  return T.toObject(T.decode(bytes), { longs: String, enums: String, defaults: false }) as Record<string, unknown>;
}
