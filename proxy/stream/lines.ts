import { StringDecoder } from 'node:string_decoder';

/**
 * Splits a byte stream into lines, incrementally and within a bound: LF, CRLF and CR all end a
 * line (the SSE spec's rule; NDJSON uses LF), a CRLF split across two reads is one line end,
 * and UTF-8 split across reads is decoded whole. A line longer than `maxLineChars` is never
 * held: it is skipped to its end and reported once through `onOversized`.
 */
export class LineSplitter {
  private readonly decoder = new StringDecoder('utf8');
  private partial = '';
  private skipping = false;
  private lastWasCR = false;

  constructor(
    private readonly maxLineChars: number,
    private readonly onLine: (line: string) => void,
    private readonly onOversized: () => void,
  ) {}

  push(chunk: Buffer): void {
    this.scan(this.decoder.write(chunk));
  }

  /** The stream ended: a last line without its line end is still a line. */
  end(): void {
    this.scan(this.decoder.end());
    if (this.partial.length > 0 && !this.skipping) this.onLine(this.partial);
    this.partial = '';
  }

  private scan(text: string): void {
    let start = 0;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c !== 10 && c !== 13) continue;
      // The LF of a CRLF whose CR ended the previous read (or the previous char) ends nothing new.
      if (c === 10 && this.lastWasCR && i === start) {
        this.lastWasCR = false;
        start = i + 1;
        continue;
      }
      this.lastWasCR = c === 13;
      this.emit(text.slice(start, i));
      start = i + 1;
    }
    if (start < text.length) {
      this.lastWasCR = false;
      if (this.skipping) return;
      this.partial += text.slice(start);
      if (this.partial.length > this.maxLineChars) {
        this.partial = '';
        this.skipping = true;
        this.onOversized();
      }
    }
  }

  private emit(tail: string): void {
    if (this.skipping) {
      this.skipping = false;
      this.partial = '';
      return;
    }
    const line = this.partial.length > 0 ? this.partial + tail : tail;
    this.partial = '';
    if (line.length > this.maxLineChars) this.onOversized();
    else this.onLine(line);
  }
}
