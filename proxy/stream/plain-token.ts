/**
 * The hot path of stream metering, on bytes: most events of an OpenAI-compatible stream are
 * `data: {…"content":"<token>"…,"finish_reason":null…}` and need no parsing to be counted as
 * one token. A chunk of such whole events is read here without decoding it to text; anything
 * that might end the stream, report usage or an error, or is framed otherwise (CR line ends,
 * multi-line data, a partial event) goes to the full parser instead.
 */
const CONTENT = ['"content":"', '"content": "', '"text":"', '"text": "'];
const FINISH_NULL = ['"finish_reason":null', '"finish_reason": null'];
/** With finish_reason null (one choice per chunk, as servers stream), only these could still matter. */
const DOUBTS = ['"usage"', '"error"'];

/** `needle` occurs in text[from, to). */
const within = (text: string, needle: string, from: number, to: number) => {
  const i = text.indexOf(needle, from);
  return i >= 0 && i + needle.length <= to;
};

/**
 * Whether text[from, to) — one event without its blank line — is certainly a plain token.
 * `text` is the chunk read as latin1: one character per byte, so the ASCII markers are found
 * wherever they are, whatever the UTF-8 around them (a token's own text is never needed here).
 */
export function isPlainToken(text: string, from: number, to: number): boolean {
  if (!text.startsWith('data:', from)) return false;
  const lf = text.indexOf('\n', from);
  if (lf >= 0 && lf < to) return false; // multi-line: the parser joins it
  let value = -1;
  for (const c of CONTENT) {
    const i = text.indexOf(c, from);
    if (i >= 0 && i < to) {
      value = i + c.length;
      break;
    }
  }
  if (value < 0 || value >= to || text.charCodeAt(value) === 34 /* " : empty */) return false;
  if (!within(text, '"choices"', from, to)) return false;
  if (!FINISH_NULL.some((f) => within(text, f, from, to))) return false;
  return !DOUBTS.some((d) => within(text, d, from, to));
}

/**
 * Reads the leading plain-token events of `chunk`: calls `token()` for each and returns the
 * byte offset where the rest (for the full parser) begins — `chunk.length` when all were
 * plain. Only whole events are taken; a chunk with a CR goes to the parser whole.
 */
export function takePlainTokens(chunk: Buffer, token: () => void): number {
  const text = chunk.toString('latin1');
  if (text.indexOf('\r') >= 0) return 0;
  let at = 0;
  while (at < text.length) {
    const end = text.indexOf('\n\n', at);
    if (end < 0 || !isPlainToken(text, at, end)) return at;
    token();
    at = end + 2;
  }
  return at;
}
