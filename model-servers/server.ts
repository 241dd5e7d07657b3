import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { type Faults, NO_FAULTS } from './faults.js';
import { FEATURES, type Features } from './iris.js';
import { ModelFailure, type ModelName, type TrainedModel, trainModel } from './models.js';

export interface ModelServerOptions {
  model: ModelName;
  /** Version label reported to clients (default: the model name). */
  version?: string;
  port?: number;
  host?: string;
  faults?: Faults;
  /** Largest accepted request body. */
  maxBodyBytes?: number;
}

export interface RunningModelServer {
  url: string;
  port: number;
  version: string;
  model: TrainedModel;
  /** Change faults at run time (tests flip a healthy server into a failing one). */
  setFaults(f: Faults): void;
  close(): Promise<void>;
}

function send(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

const err = (code: string, message: string) => ({ error: { code, message } });

/** Validates `{features: {...}}`; returns the features or a message saying what is wrong. */
export function validateInput(body: unknown): Features | string {
  if (!body || typeof body !== 'object' || Array.isArray(body))
    return 'body must be a JSON object like {"features": {...}}';
  const f = (body as { features?: unknown }).features;
  if (!f || typeof f !== 'object' || Array.isArray(f))
    return `"features" must be an object with ${FEATURES.join(', ')}`;
  const out = {} as Features;
  for (const name of FEATURES) {
    const v = (f as Record<string, unknown>)[name];
    if (typeof v !== 'number' || !Number.isFinite(v)) return `features.${name} must be a finite number (centimetres)`;
    if (v < 0 || v > 100) return `features.${name} out of range: ${v}`;
    out[name] = v;
  }
  return out;
}

/**
 * The reference model server: POST /predict, GET /healthz, GET /metadata. It trains its
 * model at start (well under a second) and never reads the network.
 */
export async function startModelServer(opts: ModelServerOptions): Promise<RunningModelServer> {
  const model = trainModel(opts.model);
  const version = opts.version ?? opts.model;
  const maxBody = opts.maxBodyBytes ?? 1024 * 1024;
  let faults = opts.faults ?? NO_FAULTS;
  const hanging = new Set<http.ServerResponse>();

  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method === 'GET' && path === '/healthz') return send(res, 200, { status: 'ok', version });
    if (req.method === 'GET' && path === '/metadata') {
      return send(res, 200, {
        version,
        model: model.name,
        description: model.description,
        trainedAt: model.trainedAt,
        dataVersion: model.dataVersion,
        metrics: { accuracy: model.accuracy, testRows: model.testRows },
      });
    }
    if (path !== '/predict')
      return send(res, 404, err('NOT_FOUND', 'endpoints: POST /predict, GET /healthz, GET /metadata'));
    if (req.method !== 'POST') return send(res, 405, err('METHOD_NOT_ALLOWED', 'use POST /predict'));

    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= maxBody) chunks.push(c);
    });
    req.on('end', () => {
      if (size > maxBody) return send(res, 413, err('BODY_TOO_LARGE', `body exceeds ${maxBody} bytes`));
      let parsed: unknown;
      try {
        parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        return send(res, 400, err('BAD_JSON', 'body is not valid JSON'));
      }
      const features = validateInput(parsed);
      if (typeof features === 'string') return send(res, 400, err('BAD_INPUT', features));
      const answer = () => {
        if (faults.errorRate > 0 && Math.random() < faults.errorRate)
          return send(res, 500, err('INJECTED_FAULT', 'injected error'));
        try {
          return send(res, 200, { ...model.predict(features), version });
        } catch (e) {
          if (e instanceof ModelFailure) return send(res, 500, err(e.code, e.message));
          throw e;
        }
      };
      if (faults.hangRate > 0 && Math.random() < faults.hangRate) {
        hanging.add(res);
        res.on('close', () => hanging.delete(res));
        return;
      }
      const delay = faults.latencyMs + (faults.jitterMs > 0 ? Math.random() * faults.jitterMs : 0);
      if (delay > 0) setTimeout(answer, delay);
      else answer();
    });
  });
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const host = opts.host && opts.host !== '0.0.0.0' ? opts.host : '127.0.0.1';
  return {
    url: `http://${host}:${port}`,
    port,
    version,
    model,
    setFaults(f) {
      faults = f;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const r of hanging) r.destroy();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
