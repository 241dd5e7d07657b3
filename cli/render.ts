import { color, lastCanaryLine, msf, pct, splitBar, table, time, verdictColor } from './format.js';
/** How the client commands show API answers to a person (tables, rules, agreement); `--json` prints them as they are. */

/** `canary agreement`: the shadow phase's agreement, its noise floor, the gate, and how the models differ. */
export function agreementText(a: any, name: string, limit: number): string {
  if (!a.canary) return `no canary has run for ${name}`;
  if (!a.shadow) return `canary ${a.canary.version} had no shadow phase (start one with --shadow or policy.shadow)`;
  const c = a.counts,
    n = a.noise,
    r = a.rule;
  const fields = a.shadow.compare.fields.length ? a.shadow.compare.fields.join(', ') : 'the whole body';
  const lines = [
    `canary ${a.canary.version} vs baseline ${a.canary.baselineVersion} — ${a.canary.phase === 'shadow' ? 'in shadow' : a.canary.phase === 'live' ? 'live (shadow passed)' : a.canary.outcome}; comparing ${fields}`,
    `agreement   ${c.compared ? `${pct(c.agreement)} (${c.agreed}/${c.compared})` : 'nothing compared yet'}${r?.canary?.low != null ? `, lower bound ${pct(r.canary.low)}` : ''}   gate ≥ ${pct(a.shadow.agreementMin)} over ${a.shadow.minRequests} answers${a.shadow.relativeToNoise ? ', relative to the noise floor' : ''}`,
    `noise floor ${n.compared ? `the baseline agrees with itself ${pct(n.agreement)} (${n.agreed}/${n.compared})` : 'not measured yet'}`,
    `shadow      errors ${c.errors}, timeouts ${c.timeouts}, dropped ${c.dropped}`,
    r ? `rule        ${r.status}: ${r.summary}` : 'rule        no analysis yet',
  ];
  if (a.examples.length) {
    const shown = a.examples.slice(0, limit);
    lines.push(
      '',
      `disagreements (newest ${shown.length} of the ${a.examples.length} kept; --limit N for more):`,
      table(
        ['TIME', 'REQUEST ID', 'INPUT SHA-256', 'BASELINE', 'CANARY'],
        shown.map((e: any) => [
          time(new Date(e.at).toISOString()),
          e.requestId,
          e.inputSha256.slice(0, 12),
          e.baseline,
          e.canary,
        ]),
      ),
    );
  }
  return lines.join('\n');
}

/** "waiting for approval to promote since …; ready on 1,524 canary requests (canary approve iris)". */
export function awaitingText(c: any, name: string): string {
  const what = c.awaitingApproval === 'promote' ? 'promote' : `advance to ${c.approvalEvidence.weight}%`;
  return `${color.yellow(`waiting for approval to ${what}`)} since ${time(c.awaitingSince)}; ready on ${Number(c.approvalEvidence.canaryRequests).toLocaleString('en-US')} canary requests (canary approve ${name})`;
}

export function showDeployment(d: any): string {
  const lines = [
    `${color.bold(d.name)}  ${d.status}  ${color.dim(`revision ${d.revision}`)}`,
    `  baseline  ${d.baseline.version}  ${color.dim(d.baseline.url)}`,
  ];
  if (d.canary) {
    const c = d.canary;
    lines.push(`  canary    ${c.version}  ${color.dim(c.url)}`);
    if (c.phase === 'shadow') {
      lines.push(
        `  split     ${splitBar(0)}  █ baseline 100% — the canary is in shadow: ${d.policy?.shadow?.percent ?? 100}% of requests are also sent to it and compared, users get only the baseline's answers (canary agreement ${d.name})`,
      );
      lines.push(
        `  steps     ${color.bold('[shadow]')} → ${c.steps.join(' → ')}  next: ${c.nextStep} once the shadow gate passes`,
      );
    } else {
      lines.push(`  split     ${splitBar(c.weight)}  █ baseline ${100 - c.weight}% / ░ canary ${c.weight}%`);
      lines.push(
        `  steps     ${c.steps.map((s: number) => (s === c.weight ? color.bold(`[${s}]`) : String(s))).join(' → ')}  next: ${c.nextStep ?? 'promote'}`,
      );
    }
    lines.push(
      `  verdict   ${verdictColor(c.lastVerdict)}  ${color.dim(c.lastAnalysisAt ? `at ${time(c.lastAnalysisAt)}` : 'no analysis yet')}`,
    );
    if (c.awaitingApproval) lines.push(`  approval  ${awaitingText(c, d.name)}`);
  } else {
    lines.push('  canary    none');
    if (d.lastCanary) lines.push(`  last      canary ${lastCanaryLine(d.lastCanary)}`);
  }
  return lines.join('\n');
}

/** The business metric per variant and the change with its interval, when outcomes arrive. */
export function businessLine(a: any): string {
  const b = a.baseline?.business,
    c = a.canary?.business,
    ch = a.canary?.businessChange;
  if (!b || !c || (b.n === 0 && c.n === 0)) return '';
  const change = ch ? `, change ${pct(ch.value)} [${pct(ch.low)}, ${pct(ch.high)}]` : '';
  return `  business: baseline ${b.mean.toFixed(4)} (n=${b.n}), canary ${c.mean.toFixed(4)} (n=${c.n})${change}, p=${a.canary.businessPValue?.toFixed(4) ?? '-'}\n`;
}

export const STATUS_WORD: Record<string, string> = {
  fail: 'FAIL',
  warn: 'WARN',
  pass: 'ok',
  pending: 'open',
  skipped: 'n/a',
};

export const bound = (lo: number | null, hi: number | null) =>
  lo === null && hi === null ? '-' : `${lo === null ? '' : pct(lo)}–${hi === null ? '' : pct(hi)}`;

/** Each rule's evidence: status, estimate per variant with bounds, n, always-valid p-value, and in words. */
export function rulesTable(a: any): string {
  if (!a?.rules?.length) return '';
  const rows = a.rules.map((r: any) => [
    r.rule,
    STATUS_WORD[r.status] ?? r.status,
    r.canary ? `${pct(r.canary.estimate)} [${bound(r.canary.low, r.canary.high)}] n=${r.canary.n}` : '-',
    r.baseline ? `${pct(r.baseline.estimate)} n=${r.baseline.n}` : '-',
    r.pValue < 0.001 ? r.pValue.toExponential(1) : r.pValue.toFixed(3),
    r.alpha.toExponential(1),
  ]);
  const words = a.rules.map((r: any) => `  ${r.rule}: ${r.summary}`).join('\n');
  const needs =
    a.needs?.requests != null
      ? `\n  a decision needs ≈ ${a.needs.requests} more canary requests${a.needs.seconds != null ? ` (≈ ${a.needs.seconds < 90 ? `${Math.max(1, Math.round(a.needs.seconds))} s` : `${Math.round(a.needs.seconds / 60)} min`} at the current rate)` : ''}`
      : '';
  return `${table(['RULE', 'STATUS', 'CANARY [BOUNDS]', 'BASELINE', 'P', 'ROLLS BACK AT P ≤'], rows)}\n${words}${needs}${a.needs?.advice ? `\n  advice: ${a.needs.advice}` : ''}`;
}

export function statsRows(a: any) {
  return [
    ['baseline', a.baseline],
    ['canary', a.canary],
  ].map(([role, s]: any) => [role, s?.version, s?.requests, pct(s?.errorRate), msf(s?.p50), msf(s?.p95), msf(s?.p99)]);
}

/**
 * Streamed answers per variant, when the deployment streams: time to first token (what the
 * latency rules judge), time per output token, decode speed, answer length, how streams ended,
 * and the cost of 1,000 answers when the deployment has prices.
 */
/** gRPC calls per variant by status code (only when gRPC calls were counted). */
export function grpcTable(a: any): string {
  const rows = [
    ['baseline', a?.baseline],
    ['canary', a?.canary],
  ].filter(([, s]: any) => s?.grpc);
  if (rows.length === 0) return '';
  const body = rows.map(([role, s]: any) => {
    const codes = Object.entries(s.grpc as Record<string, number>).sort((x, y) => y[1] - x[1]);
    const calls = codes.reduce((n, [, c]) => n + c, 0);
    return [role, String(calls), codes.map(([code, n]) => `${code} ${n}`).join(', ')];
  });
  return `${table(['GRPC', 'CALLS', 'STATUS CODES'], body)}\n`;
}

export function streamsTable(a: any): string {
  const rows = [
    ['baseline', a?.baseline],
    ['canary', a?.canary],
  ].filter(([, s]: any) => s?.streams);
  if (rows.length === 0) return '';
  const cost = rows.some(([, s]: any) => s.streams.costPer1kAnswers != null);
  const body = rows.map(([role, s]: any) => {
    const st = s.streams;
    const e = st.ends;
    return [
      role,
      String(st.streams),
      `${msf(st.ttft.p50)} / ${msf(st.ttft.p95)} / ${msf(st.ttft.p99)}`,
      msf(st.tpot.p50),
      st.tokensPerSecond == null ? '-' : st.tokensPerSecond.toFixed(0),
      st.tokensPerAnswer == null
        ? '-'
        : `${st.tokensPerAnswer.toFixed(0)}${st.estimatedShare > 0.5 ? ' (events)' : ''}`,
      `${e.complete} ok, ${e.errorEvent} error, ${e.cut} cut, ${e.clientGone} left`,
      ...(cost ? [st.costPer1kAnswers == null ? '-' : st.costPer1kAnswers.toFixed(4)] : []),
    ];
  });
  return `${table(
    [
      'STREAMS',
      'N',
      'TTFT P50 / P95 / P99',
      'TPOT P50',
      'TOKENS/S',
      'TOKENS/ANSWER',
      'ENDED',
      ...(cost ? ['COST / 1K ANSWERS'] : []),
    ],
    body,
  )}\n`;
}
