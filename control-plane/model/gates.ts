import { bad } from './policy-fields.js';

/**
 * People in the loop (policy.approvals, policy.windows): gates that only ever delay an advance
 * or a promotion. A rollback never waits for either.
 */

/** What waits for a person's approval: every live step advance, and/or the promotion. */
export type ApprovalKind = 'steps' | 'promote';
export const APPROVAL_KINDS: readonly ApprovalKind[] = ['steps', 'promote'];

export const DAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] as const;
export type Day = (typeof DAYS)[number];

/** A time of the week when a canary may advance and promote, in an IANA time zone. */
export interface DeploymentWindow {
  /** Days the window opens on (absent: every day); a window past midnight belongs to the day it opens. */
  days: Day[] | null;
  /** Minutes after local midnight. `end <= start` crosses midnight. */
  startMin: number;
  endMin: number;
  timeZone: string;
}

/** What a waiting canary would do once approved, in words: "promote" or "advance to 50%". */
export const approvalTarget = (a: { kind: 'step' | 'promote'; weight?: number }) =>
  a.kind === 'promote' ? 'promote' : `advance to ${a.weight}%`;

export function resolveApprovals(v: unknown, base: ApprovalKind[]): ApprovalKind[] {
  if (v === undefined) return [...base];
  if (v === null) return [];
  if (!Array.isArray(v)) throw bad('approvals: expected a list of "steps" and/or "promote"');
  for (const [i, k] of v.entries())
    if (!APPROVAL_KINDS.includes(k))
      throw bad(`approvals[${i}]: unknown approval ${JSON.stringify(k)} (known: "steps", "promote")`);
  return [...new Set(v as ApprovalKind[])];
}

const HHMM = /^([01]\d|2[0-3]):([0-5]\d)$/;
const minutesOf = (v: unknown, field: string): number => {
  const m = typeof v === 'string' ? HHMM.exec(v) : null;
  if (!m) throw bad(`${field}: expected a time "HH:MM" (24-hour), got ${JSON.stringify(v)}`);
  return Number(m[1]) * 60 + Number(m[2]);
};

/** A formatter per time zone (constructing one is the slow part). */
const FORMATS = new Map<string, Intl.DateTimeFormat>();
function formatIn(timeZone: string): Intl.DateTimeFormat {
  let f = FORMATS.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone,
      weekday: 'short',
      hour: '2-digit',
      minute: '2-digit',
      hourCycle: 'h23',
    });
    FORMATS.set(timeZone, f);
  }
  return f;
}

export function resolveWindows(v: unknown, base: DeploymentWindow[] | null): DeploymentWindow[] | null {
  if (v === undefined) return base?.map((w) => ({ ...w, days: w.days && [...w.days] })) ?? null;
  if (v === null) return null;
  if (!Array.isArray(v) || v.length === 0)
    throw bad('windows: expected null or a non-empty list of {days?, start, end, timeZone}');
  return v.map((raw, i) => {
    const at = `windows[${i}]`;
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
      throw bad(`${at}: expected an object {days?, start, end, timeZone}`);
    const w = raw as Record<string, unknown>;
    for (const k of Object.keys(w))
      if (!['days', 'start', 'end', 'timeZone'].includes(k))
        throw bad(`${at}.${k}: unknown field (known: days, start, end, timeZone)`);
    if (typeof w.timeZone !== 'string') throw bad(`${at}.timeZone: expected an IANA time zone such as "Europe/Berlin"`);
    try {
      formatIn(w.timeZone);
    } catch {
      throw bad(
        `${at}.timeZone: unknown time zone ${JSON.stringify(w.timeZone)} (an IANA name such as "Europe/Berlin")`,
      );
    }
    let days: Day[] | null = null;
    if (w.days !== undefined && w.days !== null) {
      if (!Array.isArray(w.days) || w.days.length === 0)
        throw bad(`${at}.days: expected a non-empty list of mon, tue, wed, thu, fri, sat, sun`);
      for (const d of w.days)
        if (!DAYS.includes(d)) throw bad(`${at}.days: unknown day ${JSON.stringify(d)} (known: ${DAYS.join(', ')})`);
      days = [...new Set(w.days as Day[])];
    }
    const startMin = minutesOf(w.start, `${at}.start`);
    const endMin = minutesOf(w.end, `${at}.end`);
    if (startMin === endMin) throw bad(`${at}: an empty window (start and end are both ${w.start})`);
    return { days, startMin, endMin, timeZone: w.timeZone };
  });
}

const hhmm = (m: number) => `${String(Math.floor(m / 60)).padStart(2, '0')}:${String(m % 60).padStart(2, '0')}`;

export function windowsToApi(windows: DeploymentWindow[] | null) {
  return (
    windows?.map((w) => ({
      ...(w.days ? { days: w.days } : {}),
      start: hhmm(w.startMin),
      end: hhmm(w.endMin),
      timeZone: w.timeZone,
    })) ?? null
  );
}

/** The local day and minute of the day at `at` in `timeZone`. */
function localTime(at: number, timeZone: string): { day: number; minute: number } {
  let day = 0,
    hour = 0,
    minute = 0;
  for (const p of formatIn(timeZone).formatToParts(at)) {
    if (p.type === 'weekday') day = DAYS.indexOf(p.value.toLowerCase().slice(0, 3) as Day);
    else if (p.type === 'hour') hour = Number(p.value);
    else if (p.type === 'minute') minute = Number(p.value);
  }
  return { day, minute: hour * 60 + minute };
}

function inside(w: DeploymentWindow, at: number): boolean {
  const { day, minute } = localTime(at, w.timeZone);
  const opensOn = (d: number) => w.days === null || w.days.includes(DAYS[(d + 7) % 7]);
  if (w.startMin < w.endMin) return opensOn(day) && minute >= w.startMin && minute < w.endMin;
  // Across midnight: the evening of a day it opens on, or the morning after one.
  return (opensOn(day) && minute >= w.startMin) || (opensOn(day - 1) && minute < w.endMin);
}

/** Whether `at` is inside any of the windows (no windows: always). */
export function insideWindows(windows: DeploymentWindow[] | null, at: number): boolean {
  return windows === null || windows.some((w) => inside(w, at));
}

/**
 * When the next window opens after `at` (epoch ms, on a whole minute), or null if none does
 * within eight days. Walks the minutes, so daylight-saving changes are the time zone's own.
 */
export function nextOpening(windows: DeploymentWindow[], at: number): number | null {
  const first = Math.ceil(at / 60_000) * 60_000;
  for (let t = first; t <= first + 8 * 86_400_000; t += 60_000) if (windows.some((w) => inside(w, t))) return t;
  return null;
}
