import type { LatencyLimits, StepCounts } from '../../model/progress.js';
import type { RuleEvidence, RuleName } from '../../model/verdict.js';
import { alphaFor } from './budget.js';
import { oneSampleRule, type RuleContext, withoutEvidence } from './one-sample.js';
import { priorWithMean, UNIFORM } from './sequential.js';

/**
 * A median-ratio rule on streams: "the canary's median ≤ limit" (the limit being a ratio of
 * the baseline's median, fixed once per step) is "at most half of the canary's streams are
 * above the limit" — a one-sample test on that share, judged against the baseline's own
 * concurrent share above the same limit (so what slows both versions is nobody's fault).
 * Skipped where no streams were measured; pending until the baseline has streamed enough to
 * fix the limit.
 */
export function streamShareRule(
  ctx: RuleContext,
  o: {
    rule: RuleName;
    /** Streams measured and streams above the limit, per variant and step. */
    pick: (c: StepCounts) => { n: number; over: number };
    limitOf: (l: LatencyLimits | null) => number | null | undefined;
    limitText: (limit: number | null) => string;
    what: string;
    waiting: string;
  },
): RuleEvidence {
  const alpha = alphaFor(ctx.policy, o.rule, true);
  const concurrent = ctx.strata.filter((s) => s.weight < 100 && o.pick(s.baseline).n > 0);
  const limited = concurrent.filter((s) => o.limitOf(s.limits));
  const current = o.limitOf(ctx.strata[ctx.strata.length - 1].limits) ?? null;
  const none = (status: 'skipped' | 'pending', summary: string) =>
    withoutEvidence(o.rule, status, o.limitText(current), alpha, summary);
  if (concurrent.length === 0 || concurrent.every((s) => o.pick(s.canary).n === 0))
    return none('skipped', `no streamed answers measured beside the baseline: ${o.what} not judged`);
  if (limited.length === 0) return none('pending', o.waiting);
  const sum = (f: (s: (typeof limited)[number]) => number) => limited.reduce((a, s) => a + f(s), 0);
  return oneSampleRule(ctx, {
    rule: o.rule,
    x: sum((s) => o.pick(s.canary).over),
    n: sum((s) => o.pick(s.canary).n),
    limit: 0.5,
    alpha,
    limitText: o.limitText(current),
    what: `share of canary streams over the ${o.what} limit`,
    baseline: { x: sum((s) => o.pick(s.baseline).over), n: sum((s) => o.pick(s.baseline).n) },
    relative: limited.map((s) => ({
      canary: { n: o.pick(s.canary).n, events: o.pick(s.canary).over },
      baseline: { n: o.pick(s.baseline).n, events: o.pick(s.baseline).over },
    })),
    passPrior: priorWithMean(0.25),
    failPrior: [UNIFORM, priorWithMean(0.8)],
  });
}
