import { LineSplitter } from './lines.js';

/** One dispatched Server-Sent Event: its type ("message" unless named) and its data. */
export interface SseEvent {
  event: string;
  data: string;
}

/**
 * An incremental Server-Sent Events parser (WHATWG HTML §9.2.6), bounded: `data:` with or
 * without the space after the colon, LF / CRLF / CR line ends, multi-line data joined with LF,
 * comment lines (`: keep-alive`) ignored, an event dispatched at its blank line. An event whose
 * data grows past `maxEventChars` is dropped (counted), never buffered without limit.
 */
export class SseParser {
  private readonly lines: LineSplitter;
  private data: string[] = [];
  private dataChars = 0;
  private eventType = '';
  private oversized = false;
  /** Events (or lines) dropped for being over the cap. */
  skipped = 0;

  constructor(
    private readonly maxEventChars: number,
    private readonly onEvent: (e: SseEvent) => void,
  ) {
    this.lines = new LineSplitter(
      maxEventChars,
      (line) => this.line(line),
      () => this.overflow(),
    );
  }

  push(chunk: Buffer): void {
    this.lines.push(chunk);
  }

  /** Between events: nothing held (no partial line, no data or event type waiting). */
  get idle(): boolean {
    return this.lines.idle && this.data.length === 0 && this.eventType === '' && !this.oversized;
  }

  /** The stream ended; an event not closed by a blank line is not dispatched (the spec's rule). */
  end(): void {
    this.lines.end();
  }

  private overflow(): void {
    if (!this.oversized) this.skipped++;
    this.oversized = true;
    this.data = [];
    this.dataChars = 0;
  }

  private line(line: string): void {
    if (line.length === 0) {
      this.dispatch();
      return;
    }
    if (line.charCodeAt(0) === 58) return; // ':' — a comment or keep-alive
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.charCodeAt(0) === 32) value = value.slice(1);
    if (field === 'data') {
      if (this.oversized) return;
      this.dataChars += value.length + 1;
      if (this.dataChars > this.maxEventChars) this.overflow();
      else this.data.push(value);
    } else if (field === 'event') this.eventType = value;
    // id and retry say nothing about the model's answer.
  }

  private dispatch(): void {
    const data = this.data;
    const event = this.eventType || 'message';
    const dropped = this.oversized;
    this.data = [];
    this.dataChars = 0;
    this.eventType = '';
    this.oversized = false;
    if (dropped || data.length === 0) return;
    this.onEvent({ event, data: data.length === 1 ? data[0] : data.join('\n') });
  }
}

/**
 * NDJSON / JSON Lines / JSON text sequences: every non-blank line is one event (a JSON text
 * sequence's record separator, U+001E, is stripped). Bounded as SSE.
 */
export class NdjsonParser {
  private readonly lines: LineSplitter;
  skipped = 0;

  constructor(maxEventChars: number, onEvent: (e: SseEvent) => void) {
    this.lines = new LineSplitter(
      maxEventChars,
      (line) => {
        const data = line.charCodeAt(0) === 0x1e ? line.slice(1).trim() : line.trim();
        if (data.length > 0) onEvent({ event: 'message', data });
      },
      () => this.skipped++,
    );
  }

  push(chunk: Buffer): void {
    this.lines.push(chunk);
  }

  end(): void {
    this.lines.end();
  }
}
