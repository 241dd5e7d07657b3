/**
 * Which answers are streams, by their content type: Server-Sent Events (OpenAI-compatible
 * servers: vLLM, TGI, SGLang, llama.cpp, LiteLLM) or newline-delimited JSON (Ollama's native
 * API; JSON Lines; JSON text sequences, RFC 7464). Anything else is an ordinary answer.
 */
export type Framing = 'sse' | 'ndjson';

const NDJSON_TYPES = new Set([
  'application/x-ndjson',
  'application/ndjson',
  'application/jsonl',
  'application/json-seq',
]);

export function framingOf(contentType: string | undefined): Framing | null {
  if (!contentType) return null;
  const semi = contentType.indexOf(';');
  const type = (semi < 0 ? contentType : contentType.slice(0, semi)).trim().toLowerCase();
  if (type === 'text/event-stream') return 'sse';
  return NDJSON_TYPES.has(type) ? 'ndjson' : null;
}

/** The content type in undici's raw `[name, value, …]` response headers, without decoding the others. */
export function rawContentType(raw: Buffer[]): string | undefined {
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i];
    // 'content-type' is 12 bytes: compare only names of that length.
    if (name.length === 12 && name.toString('latin1').toLowerCase() === 'content-type')
      return raw[i + 1].toString('latin1');
  }
  return undefined;
}
