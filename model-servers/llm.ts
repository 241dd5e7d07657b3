import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseDuration } from '../common/duration.js';
import { seededRandom } from '../common/random.js';
import { FaultConfigError } from './faults.js';
import { generateTokens, hashText } from './text.js';

/**
 * How the reference LLM server behaves; each is a fault a test or demo can set.
 * - ttftMs: time to the first token; tpotMs: time per token after it;
 * - tokens: answer length range [min, max] (each answer's length follows from its prompt);
 *   lengthScale multiplies it (a "verbose" model);
 * - errorEventRate: share of streams that fail after the 200 with an error event (as vLLM does);
 * - cutRate: share of streams whose connection is dropped mid-answer;
 * - errorRate: share of requests answered 500 before any token.
 */
export interface LlmBehaviour {
  ttftMs: number;
  tpotMs: number;
  tokens: [number, number];
  lengthScale: number;
  errorEventRate: number;
  cutRate: number;
  errorRate: number;
}

export const DEFAULT_LLM: Readonly<LlmBehaviour> = Object.freeze({
  ttftMs: 20,
  tpotMs: 5,
  tokens: [10, 60] as [number, number],
  lengthScale: 1,
  errorEventRate: 0,
  cutRate: 0,
  errorRate: 0,
});

const fraction = (v: string, name: string) => {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0 || n > 1)
    throw new FaultConfigError(`${name}: expected a fraction from 0 to 1, got ${JSON.stringify(v)}`);
  return n;
};

/** Parses the CLI's flags (`--ttft 20ms --tpot 5ms --tokens 10-60 --length-scale 2.5 ...`). */
export function parseLlmBehaviour(f: Partial<Record<keyof LlmBehaviour, string>>): LlmBehaviour {
  const d = (v: string | undefined, name: string, dflt: number) => {
    if (v === undefined || v === '') return dflt;
    try {
      return parseDuration(v, name);
    } catch (e) {
      throw new FaultConfigError((e as Error).message);
    }
  };
  let tokens = DEFAULT_LLM.tokens;
  if (f.tokens !== undefined) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(f.tokens);
    const lo = m ? Number(m[1]) : Number.NaN;
    const hi = m ? Number(m[2] ?? m[1]) : Number.NaN;
    if (!m || lo < 1 || hi < lo || hi > 100_000)
      throw new FaultConfigError(`--tokens: expected N or MIN-MAX (1-100000), got ${JSON.stringify(f.tokens)}`);
    tokens = [lo, hi];
  }
  const scale = f.lengthScale === undefined ? 1 : Number(f.lengthScale);
  if (!Number.isFinite(scale) || scale <= 0 || scale > 100)
    throw new FaultConfigError(`--length-scale: expected a number above 0, got ${JSON.stringify(f.lengthScale)}`);
  return {
    ttftMs: d(f.ttftMs, 'ttft', DEFAULT_LLM.ttftMs),
    tpotMs: d(f.tpotMs, 'tpot', DEFAULT_LLM.tpotMs),
    tokens,
    lengthScale: scale,
    errorEventRate: f.errorEventRate === undefined ? 0 : fraction(f.errorEventRate, '--error-event-rate'),
    cutRate: f.cutRate === undefined ? 0 : fraction(f.cutRate, '--cut-rate'),
    errorRate: f.errorRate === undefined ? 0 : fraction(f.errorRate, '--error-rate'),
  };
}

export interface RunningLlmServer {
  url: string;
  port: number;
  version: string;
  setBehaviour(b: LlmBehaviour): void;
  close(): Promise<void>;
}

function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
const apiError = (message: string, type: string, code: number) => ({ error: { message, type, code } });

type Kind = 'chat' | 'completion';

/** The prompt's text, for seeding: chat messages' contents, or the completion prompt. */
function promptOf(body: Record<string, unknown>, kind: Kind): string | null {
  if (kind === 'completion') return typeof body.prompt === 'string' ? body.prompt : null;
  if (!Array.isArray(body.messages) || body.messages.length === 0) return null;
  return body.messages.map((m) => (typeof m?.content === 'string' ? m.content : '')).join('\n');
}

/**
 * The reference LLM server, OpenAI-compatible: POST /v1/chat/completions and /v1/completions,
 * streaming (SSE, vLLM's framing: a role-only first chunk, a finish_reason chunk, a usage chunk
 * with `stream_options.include_usage`, `data: [DONE]`) or not; GET /v1/models, GET /healthz.
 */
export async function startLlmServer(opts: {
  version: string;
  port?: number;
  host?: string;
  behaviour?: LlmBehaviour;
}): Promise<RunningLlmServer> {
  let b = opts.behaviour ?? DEFAULT_LLM;
  const version = opts.version;
  const live = new Set<http.ServerResponse>();

  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method === 'GET' && (path === '/healthz' || path === '/health'))
      return sendJson(res, 200, { status: 'ok', version });
    if (req.method === 'GET' && path === '/v1/models')
      return sendJson(res, 200, {
        object: 'list',
        data: [{ id: version, object: 'model', created: 0, owned_by: 'canary-mesh' }],
      });
    const kind: Kind | null =
      path === '/v1/chat/completions' ? 'chat' : path === '/v1/completions' ? 'completion' : null;
    if (!kind)
      return sendJson(
        res,
        404,
        apiError('endpoints: POST /v1/chat/completions, POST /v1/completions, GET /v1/models', 'not_found', 404),
      );
    if (req.method !== 'POST') return sendJson(res, 405, apiError(`use POST ${path}`, 'invalid_request_error', 405));
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let body: Record<string, unknown>;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        return sendJson(res, 400, apiError('body is not valid JSON', 'invalid_request_error', 400));
      }
      const prompt = body && typeof body === 'object' ? promptOf(body, kind) : null;
      if (prompt === null)
        return sendJson(
          res,
          400,
          apiError(
            kind === 'chat' ? '"messages" must be a non-empty array' : '"prompt" must be a string',
            'invalid_request_error',
            400,
          ),
        );
      answer(res, req, body, kind, prompt, b);
    });
  });

  function answer(
    res: http.ServerResponse,
    req: http.IncomingMessage,
    body: Record<string, unknown>,
    kind: Kind,
    prompt: string,
    cfg: LlmBehaviour,
  ): void {
    const seed = hashText(prompt);
    const rnd = seededRandom(seed ^ 0x9e3779b9);
    const [lo, hi] = cfg.tokens;
    let n = Math.max(1, Math.round((lo + Math.floor(rnd() * (hi - lo + 1))) * cfg.lengthScale));
    const maxTokens = typeof body.max_tokens === 'number' ? body.max_tokens : null;
    const finish = maxTokens !== null && maxTokens < n ? 'length' : 'stop';
    if (maxTokens !== null) n = Math.max(1, Math.min(n, maxTokens));
    const tokens = generateTokens(seed, n);
    const promptTokens = prompt.split(/\s+/).filter(Boolean).length;
    const id = `${kind === 'chat' ? 'chatcmpl' : 'cmpl'}-${randomUUID()}`;
    const created = Math.floor(Date.now() / 1000);
    const usage = { prompt_tokens: promptTokens, completion_tokens: n, total_tokens: promptTokens + n };
    const model = version;
    // The random draws for faults are made per request (not from the prompt): they are faults.
    if (Math.random() < cfg.errorRate) {
      sendJson(res, 500, apiError('injected error', 'InternalServerError', 500));
      return;
    }
    const start = performance.now();
    live.add(res);
    let timer: NodeJS.Timeout | null = null;
    res.once('close', () => {
      live.delete(res);
      if (timer) clearTimeout(timer);
    });
    const at = (i: number) => start + cfg.ttftMs + i * cfg.tpotMs;

    if (body.stream !== true) {
      timer = setTimeout(
        () => {
          const text = tokens.join('');
          sendJson(res, 200, {
            id,
            object: kind === 'chat' ? 'chat.completion' : 'text_completion',
            created,
            model,
            choices: [
              kind === 'chat'
                ? { index: 0, message: { role: 'assistant', content: text }, finish_reason: finish }
                : { index: 0, text, finish_reason: finish },
            ],
            usage,
          });
        },
        at(n - 1) - start,
      );
      return;
    }

    const includeUsage = (body.stream_options as { include_usage?: unknown } | undefined)?.include_usage === true;
    const errorAt = Math.random() < cfg.errorEventRate ? Math.floor(Math.random() * n) : -1;
    const cutAt = errorAt < 0 && Math.random() < cfg.cutRate ? Math.floor(Math.random() * n) : -1;
    const chunk = (choice: Record<string, unknown>, extra: Record<string, unknown> = {}) =>
      `data: ${JSON.stringify({
        id,
        object: kind === 'chat' ? 'chat.completion.chunk' : 'text_completion',
        created,
        model,
        choices: [{ index: 0, ...choice }],
        ...extra,
      })}\n\n`;
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    if (kind === 'chat') res.write(chunk({ delta: { role: 'assistant', content: '' }, finish_reason: null }));
    else res.flushHeaders();
    let i = 0;
    const next = () => {
      timer = null;
      if (res.destroyed) return;
      if (i === errorAt) {
        res.write(
          `data: ${JSON.stringify(apiError('injected error during generation', 'InternalServerError', 500))}\n\n`,
        );
        res.end('data: [DONE]\n\n');
        return;
      }
      if (i === cutAt) {
        req.socket.destroy();
        return;
      }
      const t = tokens[i];
      res.write(
        kind === 'chat'
          ? chunk({ delta: { content: t }, finish_reason: null })
          : chunk({ text: t, finish_reason: null }),
      );
      i++;
      if (i < n) {
        timer = setTimeout(next, Math.max(0, at(i) - performance.now()));
        return;
      }
      res.write(
        kind === 'chat' ? chunk({ delta: {}, finish_reason: finish }) : chunk({ text: '', finish_reason: finish }),
      );
      if (includeUsage)
        res.write(
          `data: ${JSON.stringify({ id, object: kind === 'chat' ? 'chat.completion.chunk' : 'text_completion', created, model, choices: [], usage })}\n\n`,
        );
      res.end('data: [DONE]\n\n');
    };
    timer = setTimeout(next, Math.max(0, at(0) - performance.now()));
  }

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
    setBehaviour(nb) {
      b = nb;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const r of live) r.destroy();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
