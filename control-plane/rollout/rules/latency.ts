import type { Policy } from '../../model/policy.js';
import type { StepCounts } from '../../model/progress.js';
import type { RuleEvidence, RuleName } from '../../model/verdict.js';
import { alphaFor } from '../evidence/budget.js';
import { latencyN, MIN_REFERENCE_REQUESTS } from '../evidence/counts.js';
import { oneSampleRule, type RuleContext, withoutEvidence } from '../evidence/one-sample.js';
import { priorWithMean, UNIFORM } from '../evidence/sequential.js';
import { dur, ms } from '../evidence/text.js';

/**
 * p99 is a sustained rule: once its test rejects, the clock runs until latencyP99For (warn
 * until then), and neither a clean look nor a step advance resets it — only evidence does:
 * when the test shows the canary's p99 within its limit (pass), the breach is over and the
 * latch clears, so a blip followed by clean traffic is promoted, never held forever.
 */
export function sustainedP99(
  p99: RuleEvidence,
  since: number | null,
  policy: Policy,
  now: number,
): { rule: RuleEvidence; breachSince: number | null } {
  const forMs = policy.thresholds.latencyP99ForMs;
  if (p99.status === 'fail') {
    const breachSince = since ?? now;
    const held = Math.round((now - breachSince) / 1000);
    const rule: RuleEvidence =
      now - breachSince < forMs
        ? {
            ...p99,
            status: 'warn',
            summary: `${p99.summary}; for ${held}s of the ${Math.round(forMs / 1000)}s it must last`,
          }
        : { ...p99, summary: `${p99.summary}, for ${held}s (limit ${Math.round(forMs / 1000)}s)` };
    return { rule, breachSince };
  }
  if (since === null) return { rule: p99, breachSince: null };
  if (p99.status === 'pass') {
    const ago = Math.round((now - since) / 1000);
    return {
      rule: { ...p99, summary: `${p99.summary}; it was over its limit ${ago}s ago and has recovered` },
      breachSince: null,
    };
  }
  const ago = Math.round((now - since) / 1000);
  return {
    rule: { ...p99, status: 'warn', summary: `${p99.summary}; p99 has been over its limit since ${ago}s ago` },
    breachSince: since,
  };
}

/**
 * Latency at p95 or p99: "p95 ≤ L" is "at most 5% of requests above L", a one-sample test on
 * the canary's share above the step's limit, judged against the baseline's concurrent share.
 */
export function latencyRule(ctx: RuleContext, which: 'p95' | 'p99'): RuleEvidence {
  const rule: RuleName = which === 'p95' ? 'latency_p95' : 'latency_p99';
  const alpha = alphaFor(ctx.policy, rule, ctx.streams);
  const share = which === 'p95' ? 0.05 : 0.01;
  // Latency is judged only where the baseline served at the same time: at 100% the canary
  // carries the whole load and nothing measured at that load and time compares with it — the
  // few baseline requests such a step may show (stats flushed late, a route a moment stale)
  // included — so that step adds no latency evidence (errors are still judged).
  const concurrent = ctx.strata.filter((s) => s.weight < 100 && s.baseline.n > 0);
  const limited = concurrent.filter((s) => s.limits !== null);
  const current = ctx.strata[ctx.strata.length - 1].limits;
  const t = ctx.policy.thresholds;
  // A streamed answer's latency is its time to first token (the proxy records it so): say so.
  const streaming = (ctx.canary.tokensN ?? 0) * 2 > latencyN(ctx.canary);
  const of = streaming ? 'time-to-first-token ' : '';
  const limitText =
    which === 'p95'
      ? `canary ${of}p95 ≤ baseline p95 + ${t.latencyP95DeltaMs}ms${t.latencyP95Ratio ? ` (or × ${t.latencyP95Ratio})` : ''}${current ? ` = ${ms(current.p95Ms)}` : ''}`
      : `canary ${of}p99 ≤ ${t.latencyP99Ratio} × baseline p99${current ? ` = ${ms(current.p99Ms)}` : ''}`;
  // Not judged yet (or not at all): the rule says why, with no numbers to show.
  const noEvidence = (status: 'pending' | 'skipped', summary: string) =>
    withoutEvidence(rule, status, limitText, alpha, summary);
  const warmup = ctx.policy.warmup;
  if (ctx.warming && warmup) {
    const what = [
      warmup.durationMs > 0 ? `${dur(warmup.durationMs / 1000)} after it started` : null,
      warmup.requests > 0 ? `${warmup.requests} requests` : null,
    ]
      .filter(Boolean)
      .join(' and ');
    return noEvidence(
      'pending',
      `the canary is warming up (policy.warmup: ${what}): its latency is judged on the traffic after that; its errors from the first request`,
    );
  }
  if (limited.length === 0) {
    if (concurrent.length === 0)
      return noEvidence(
        'skipped',
        'the baseline had no traffic while the canary ran: latency cannot be compared (errors still are)',
      );
    return noEvidence(
      'pending',
      `waiting for ${MIN_REFERENCE_REQUESTS} baseline requests to fix the latency limit from the baseline's own ${which}`,
    );
  }
  const x = limited.reduce((a, s) => a + (which === 'p95' ? s.canary.slow95 : s.canary.slow99), 0);
  const n = limited.reduce((a, s) => a + latencyN(s.canary), 0);
  const bx = limited.reduce((a, s) => a + (which === 'p95' ? s.baseline.slow95 : s.baseline.slow99), 0);
  const bn = limited.reduce((a, s) => a + latencyN(s.baseline), 0);
  const slow = (c: StepCounts) => (which === 'p95' ? c.slow95 : c.slow99);
  const relative = limited.map((s) => ({
    canary: { n: latencyN(s.canary), events: slow(s.canary) },
    baseline: { n: latencyN(s.baseline), events: slow(s.baseline) },
  }));
  // "p95 ≤ L" is "at most 5% of requests above L": a one-sample test on the share above L,
  // judged against the baseline's concurrent share above the same L.
  return oneSampleRule(ctx, {
    relative,
    rule,
    x,
    n,
    limit: share,
    alpha,
    limitText,
    what: streaming
      ? `share of canary streams whose first token came after the ${which} limit`
      : `share of canary requests over the ${which} limit`,
    // Rollback mixes the uniform prior (fast on gross slowness) with one centred at 3× the
    // allowed share (power against tails a few times too heavy, like a p99 three times the baseline's).
    baseline: { x: bx, n: bn },
    passPrior: priorWithMean(share / 4),
    failPrior: [UNIFORM, priorWithMean(3 * share)],
  });
}
