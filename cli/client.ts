import { request } from 'undici';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** A small client for the REST API (DESIGN.md §3); errors come back as ApiError with the API's code. */
export class ApiClient {
  constructor(
    readonly baseUrl: string,
    private readonly token: string | null,
    private readonly actor = 'cli',
  ) {}

  async call<T = any>(
    method: 'GET' | 'POST' | 'PUT',
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<T> {
    let res: Awaited<ReturnType<typeof request>>;
    // Mutations always send a JSON body ({} when there is nothing to say).
    const payload = body !== undefined ? JSON.stringify(body) : method === 'GET' ? undefined : '{}';
    try {
      res = await request(new URL(path, this.baseUrl), {
        method,
        headers: {
          ...(payload !== undefined ? { 'content-type': 'application/json' } : {}),
          ...(this.token ? { authorization: `Bearer ${this.token}` } : {}),
          'x-canary-actor': this.actor,
          ...headers,
        },
        body: payload,
        headersTimeout: 30_000,
      });
    } catch (err) {
      throw new ApiError(
        0,
        'UNREACHABLE',
        `cannot reach the control plane at ${this.baseUrl} (${(err as Error).message}); is it running? set CANARY_API_URL`,
      );
    }
    const text = await res.body.text();
    let json: any;
    try {
      json = text ? JSON.parse(text) : {};
    } catch {
      json = null;
    }
    if (res.statusCode >= 400) {
      throw new ApiError(
        res.statusCode,
        json?.error?.code ?? 'HTTP_ERROR',
        json?.error?.message ?? `HTTP ${res.statusCode}`,
      );
    }
    if (json === null)
      throw new ApiError(
        res.statusCode,
        'BAD_RESPONSE',
        `the control plane sent something that is not JSON: ${text.slice(0, 100)}`,
      );
    return json as T;
  }
}
