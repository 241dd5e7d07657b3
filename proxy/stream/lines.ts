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
  /** The last read ended inside a UTF-8 character (the decoder holds its first bytes). */
  private midCharacter = false;

  constructor(
    private readonly maxLineChars: number,
    private readonly onLine: (line: string) => void,
    private readonly onOversized: () => void,
  ) {}

  push(chunk: Buffer): void {
    this.midCharacter = chunk.length > 0 && chunk[chunk.length - 1] >= 0x80;
    this.scan(this.decoder.write(chunk));
  }

  /** Nothing held: no partial line, nothing skipped, no CR waiting for its LF. */
  get idle(): boolean {
    return this.partial.length === 0 && !this.skipping && !this.lastWasCR && !this.midCharacter;
  }

  /** The stream ended: a last line without its line end is still a line. */
  end(): void {
    this.scan(this.decoder.end());
    if (this.partial.length > 0 && !this.skipping) this.onLine(this.partial);
    this.partial = '';
  }

  private scan(text: string): void {
    let start = 0;
    // The LF of a CRLF whose CR ended the previous read ends nothing new.
    if (this.lastWasCR && text.charCodeAt(0) === 10) start = 1;
    this.lastWasCR = false;
    // Line ends found with indexOf (native, fast); CR is looked for only when the text has one.
    let nextCR = text.indexOf('\r', start);
    for (;;) {
      const nextLF = text.indexOf('\n', start);
      if (nextCR >= 0 && nextCR < start) nextCR = text.indexOf('\r', start);
      let end: number;
      let crlf = false;
      if (nextCR >= 0 && (nextLF < 0 || nextCR < nextLF)) {
        end = nextCR;
        crlf = text.charCodeAt(end + 1) === 10;
        if (end + 1 === text.length) this.lastWasCR = true; // its LF may come in the next read
      } else if (nextLF >= 0) end = nextLF;
      else break;
      this.emit(text.slice(start, end));
      start = end + (crlf ? 2 : 1);
    }
    if (start < text.length) {
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
