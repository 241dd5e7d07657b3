/** Terminal output: aligned tables, and colours only when writing to a terminal. */
const useColor = () => process.stdout.isTTY === true && !process.env.NO_COLOR;
const wrap = (code: number) => (s: string) => (useColor() ? `\x1b[${code}m${s}\x1b[0m` : s);
export const color = { red: wrap(31), green: wrap(32), yellow: wrap(33), blue: wrap(34), dim: wrap(2), bold: wrap(1) };

// eslint-disable-next-line no-control-regex
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching the ESC of ANSI colour codes is the point
const visible = (s: string) => s.replace(/\x1b\[[0-9;]*m/g, '').length;

export function table(headers: string[], rows: (string | number | null | undefined)[][]): string {
  const cells = rows.map((r) => r.map((c) => (c === null || c === undefined ? '-' : String(c))));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => visible(r[i] ?? ''))));
  const line = (r: string[]) =>
    r
      .map((c, i) => c + ' '.repeat(widths[i] - visible(c)))
      .join('  ')
      .trimEnd();
  return [color.bold(line(headers)), ...cells.map(line)].join('\n');
}

export function verdictColor(v: string | null | undefined): string {
  if (!v) return '-';
  if (v === 'healthy') return color.green(v);
  if (v === 'critical' || v === 'error') return color.red(v);
  return color.yellow(v);
}

export const pct = (x: number | null | undefined) => (x === null || x === undefined ? '-' : `${(x * 100).toFixed(2)}%`);
export const msf = (x: number | null | undefined) => (x === null || x === undefined ? '-' : `${x.toFixed(1)}ms`);
export const time = (iso: string | null | undefined) => (iso ? iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '-');

/** How long ago an instant was, as a person says it: "40 s ago", "2 min ago", "3 h ago", "5 days ago". */
export function ago(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return '';
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86_400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86_400)} days ago`;
}

/** The last canary in a line: "v2 rolled back 2 min ago: canary error rate 14% …". */
export function lastCanaryLine(l: { version: string; outcome: string; endedAt: string | null; reason: string | null }) {
  const how = l.outcome.replace('_', ' ');
  return `${l.version} ${l.outcome === 'rolled_back' ? color.red(how) : color.green(how)} ${ago(l.endedAt)}${l.reason ? `: ${l.reason}` : ''}`;
}

/** The split as a bar readable without colour too: █ baseline, ░ canary. */
export function splitBar(weight: number, width = 20): string {
  const c = Math.round((weight / 100) * width);
  return `${color.blue('█'.repeat(width - c))}${color.yellow('░'.repeat(c))}`;
}
