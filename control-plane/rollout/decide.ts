import { noAgreement, type VersionStats } from '../../proxy/contract/stats.js';
import { approvalTarget, insideWindows, nextOpening } from '../model/gates.js';
import { AUTO_STEPS, type Policy } from '../model/policy.js';
import type { AwaitingApproval, CanaryProgress, StatsInput } from '../model/progress.js';
import type { Action, Decision, RuleEvidence } from '../model/verdict.js';
import { errorInflation } from './evidence/clusters.js';
import { add, currentStratum, latencyLimits, withStreamLimits, ZERO } from './evidence/counts.js';
import type { RuleContext } from './evidence/one-sample.js';
import { dur } from './evidence/text.js';
import { agreementRule } from './rules/agreement.js';
import { businessOutcomes, businessRule } from './rules/business.js';
import { errorDeltaRule } from './rules/error-rate-delta.js';
import { errorMaxRule } from './rules/error-rate-max.js';
import { latencyRule, sustainedP99 } from './rules/latency.js';
import { outputTokensRule } from './rules/output-tokens.js';
import { sampleRatioRule } from './rules/sample-ratio.js';
import { tpotRule } from './rules/tpot.js';
import { autoStartWeight } from './sizing.js';

export const EPS = 1e-9;

/**
 * A p99 not yet decided holds no advance to a step below this weight. A tail regression is a
 * small share of requests over the limit (2% of requests 8× slower puts 1.7% over a p99 limit
 * that allows 1%), and telling that from the allowed 1% takes thousands of canary requests: at
 * 1% of 100 rps, more than half an hour. Held at the first step the rule could never decide, so
 * the ramp goes on while it only gathers evidence (pending, or building without a rejection),
 * where it gets ten times the traffic — but no further than a minority of users, and never to
 * promotion. A rejection (a breach) holds at once, as ever, and rolls back when sustained.
 */
export const UNDECIDED_P99_ADVANCES_BELOW = 50;

/** The weight after `weight` in the policy's steps, or null when the ramp is done. */
export function nextStep(policy: Policy, weight: number): number | null {
  return policy.steps.find((s) => s > weight + EPS) ?? null;
}

/**
 * The absolute error-rate rule alone, on the counts of both versions: what the fast path
 * evaluates at every stats flush so a grossly failing canary is rolled back within seconds —
 * and, like the rule itself, not for failures the baseline shares over the same steps.
 */
export function grossFailure(
  progress: CanaryProgress,
  policy: Policy,
  step: { canary: VersionStats; baseline: VersionStats },
): RuleEvidence {
  const strata = [...(progress.strata ?? []), currentStratum(progress, null, step, 0)];
  const canary = strata.reduce((a, s) => add(a, s.canary), ZERO);
  const baseline = strata.reduce((a, s) => add(a, s.baseline), ZERO);
  return errorMaxRule({
    policy,
    strata,
    canary,
    baseline,
    errorInflation: errorInflation(canary, baseline),
    canaryRate: null,
    beta: 1 - policy.confidence,
    explain: false,
  });
}

/**
 * The canary brain. Pure: no I/O, no clock — `now` is an argument — so whole rollouts can be
 * replayed on a fake clock (`npm run sim`). Returns the verdict, each rule's evidence, what to
 * do, and the new progress. Evidence accumulates over the canary's whole life: each finished
 * step is a stratum, so looking more often or advancing never resets it.
 */
export function decide(
  progress: CanaryProgress,
  policy: Policy,
  stats: StatsInput,
  now: number,
  opts: { explain?: boolean } = {},
): Decision {
  if ('error' in stats)
    return { verdict: 'error', reasons: [`metrics unavailable: ${stats.error}`], actions: [], progress, rules: [] };

  // The step's latency limits are fixed once, from the baseline before the step or, failing
  // that, the baseline during it — never from the canary, so the latency tests stay valid.
  const baselineNow = stats.baseline;
  // Stream limits fill in once the baseline has streamed enough (a step's latency limits may be
  // fixed before any stream was seen); they too are fixed from the baseline, never the canary.
  const limits = withStreamLimits(
    policy,
    progress.limits ?? latencyLimits(policy, stats.reference) ?? latencyLimits(policy, baselineNow),
    [stats.reference, baselineNow],
  );
  const current = currentStratum(progress, limits, stats, now);
  const strata = [...(progress.strata ?? []), current];
  const canary = strata.reduce((a, s) => add(a, s.canary), ZERO);
  const baseline = strata.reduce((a, s) => add(a, s.baseline), ZERO);
  const elapsedS = (now - progress.stepStartedAt) / 1000;
  const canaryRate = elapsedS > 0 && current.canary.n > 0 ? current.canary.n / elapsedS : null;
  const ctx: RuleContext = {
    policy,
    strata,
    canary,
    baseline,
    canaryRate,
    beta: 1 - policy.confidence,
    explain: opts.explain ?? true,
    streams: strata.some((s) => (s.canary.tpotN ?? 0) + (s.baseline.tpotN ?? 0) > 0),
    warming: stats.latency === null,
    errorInflation: errorInflation(canary, baseline),
  };

  const rules = [errorMaxRule(ctx), errorDeltaRule(ctx), latencyRule(ctx, 'p95'), latencyRule(ctx, 'p99')];
  const p99 = sustainedP99(rules[3], progress.p99BreachSince, policy, now);
  rules[3] = p99.rule;
  const p99BreachSince = p99.breachSince;
  // Streams: how fast tokens come after the first (and, when asked, how long answers grow).
  if (ctx.streams) {
    rules.push(tpotRule(ctx));
    const length = outputTokensRule(ctx);
    if (length) rules.push(length);
  }
  // In shadow no user got an answer from the canary: no business outcomes, but agreement.
  const shadow = progress.phase === 'shadow' ? (policy.shadow ?? null) : null;
  // Business outcomes are summarised whenever feedback arrives (the API shows them); judged only live.
  const outcomes = businessOutcomes(policy, stats.business ?? null);
  const business = shadow ? { rule: null, breachSince: null } : businessRule(progress, policy, outcomes, now);
  if (business.rule) rules.push(business.rule);
  if (shadow)
    rules.push(
      agreementRule(ctx, shadow, stats.canary.agreement ?? noAgreement(), stats.baseline.agreement ?? noAgreement()),
    );
  // Live: is the split itself what the comparisons assume? A mismatch holds, never rolls back.
  else rules.push(sampleRatioRule(ctx));

  const next: CanaryProgress = {
    ...progress,
    ...(stats.warmedAt != null ? { warmedAt: stats.warmedAt } : {}),
    limits,
    lastStep: current,
    p99BreachSince,
    businessBreachSince: business.breachSince,
  };
  const upcoming = shadow ? null : nextStep(policy, progress.weight);
  const p99Undecided =
    p99BreachSince === null &&
    upcoming !== null &&
    upcoming < UNDECIDED_P99_ADVANCES_BELOW &&
    (rules[3].status === 'pending' || rules[3].status === 'warn')
      ? rules[3]
      : null;
  const holding = rules.filter((r) => r !== p99Undecided);
  const failing = rules.filter((r) => r.status === 'fail');
  const warning = holding.filter((r) => r.status === 'warn');
  const pending = holding.filter((r) => r.status === 'pending');

  if (failing.length)
    return act(
      'critical',
      failing.map((r) => r.summary),
    );
  if (warning.length)
    return {
      verdict: 'degraded',
      reasons: [...warning.map((r) => r.summary), `holding at ${progress.weight}%`],
      actions: [],
      progress: next,
      rules,
      business: outcomes,
    };
  if (pending.length || canary.n < policy.minRequests) return inconclusive();
  if (p99Undecided)
    return act('healthy', [
      `every other rule within its limit at ${Math.round(policy.confidence * 100)}% confidence over ${canary.n} canary requests`,
      `latency_p99 not decided yet (${p99Undecided.status === 'warn' ? 'evidence building against it' : 'a tail needs more canary requests than this step gets'}): the ramp goes on to ${upcoming}%, where it gets more traffic; it is not ramped to ${UNDECIDED_P99_ADVANCES_BELOW}% or promoted until p99 passes`,
    ]);
  return act('healthy', [
    `every rule within its limit at ${Math.round(policy.confidence * 100)}% confidence over ${canary.n} canary requests`,
  ]);

  function inconclusive(): Decision {
    const reasons = pending.map((r) => r.summary);
    if (canary.n < policy.minRequests)
      reasons.push(
        `${canary.n} canary requests so far; never advances on fewer than minRequests ${policy.minRequests}`,
      );
    const counted = pending.map((r) => r.needs).filter((n): n is NonNullable<typeof n> => !!n);
    // A pending rule without an estimate waits on something else (the baseline's own requests
    // to fix its limits): no count of canary requests can be promised then.
    const requests =
      counted.some((n) => n.requests === null) || counted.length < pending.length
        ? null
        : Math.max(policy.minRequests - canary.n, ...counted.map((n) => n.requests!), 0);
    const seconds = requests !== null && canaryRate ? requests / canaryRate : null;
    let advice: string | null = null;
    const leftS = policy.maxStepDurationMs / 1000 - elapsedS;
    if (canaryRate && progress.weight > 0 && requests !== null && seconds !== null && seconds > leftS) {
      const totalRps = canaryRate / (progress.weight / 100);
      const better = AUTO_STEPS.find(
        (w) =>
          w > progress.weight && requests / ((totalRps * w) / 100) <= Math.max(leftS, policy.maxStepDurationMs / 1000),
      );
      const firstStep = !progress.strata?.length;
      advice = `at ${progress.weight}% of ${totalRps.toFixed(1)} rps this step needs ≈ ${dur(seconds)} more to decide, past maxStepDuration ${dur(policy.maxStepDurationMs / 1000)}${better ? `; ${firstStep ? 'start at' : 'set the weight to'} ${better}%` : '; send more traffic or widen the thresholds'}`;
      reasons.push(advice);
    } else if (elapsedS * 1000 > policy.maxStepDurationMs) {
      advice = `this step has run ${dur(elapsedS)}, past maxStepDuration ${dur(policy.maxStepDurationMs / 1000)}, without a decision`;
      reasons.push(advice);
    }
    return {
      verdict: 'inconclusive',
      reasons,
      actions: [],
      progress: next,
      rules,
      business: outcomes,
      needs: { requests, seconds, advice },
    };
  }

  function act(verdict: 'critical' | 'healthy', reasons: string[]): Decision {
    const d = (actions: Action[], extra: string[] = [], p = next): Decision => ({
      verdict,
      reasons: [...reasons, ...extra],
      actions,
      progress: p,
      rules,
      business: outcomes,
    });
    if (next.paused) return d([], ['paused: no action taken']);
    if (verdict === 'critical')
      return d([
        policy.autoRollback
          ? { type: 'rollback', ...(shadow ? { fromShadow: true } : {}) }
          : { type: 'record_failure' },
      ]);
    if (shadow && now - next.stepStartedAt < shadow.durationMs)
      return d([], [`in shadow until it has lasted ${Math.round(shadow.durationMs / 1000)}s`]);
    if (!shadow && now - next.stepStartedAt < policy.stepDurationMs)
      return d(
        [],
        [`holding at ${next.weight}% until the step has lasted ${Math.round(policy.stepDurationMs / 1000)}s`],
      );
    // Past the shadow gate, the first step (steps "auto": from the traffic the baseline served,
    // all of it, during the shadow phase); otherwise the next one.
    const weight = !shadow
      ? nextStep(policy, next.weight)
      : policy.autoSteps
        ? autoStartWeight(policy, baselineNow, now - progress.stepStartedAt)
        : policy.steps[0];
    if (weight === null && !policy.autoPromote) return d([], ['last step reached; autoPromote is off']);
    // People in the loop: outside every deployment window nothing moves (the verdict stays
    // healthy and says when the next window opens); a live step or the promotion may wait for
    // an approval. Going live from a shadow phase is the shadow's own gate, not a step.
    const windows = policy.windows ?? null;
    if (!insideWindows(windows, now)) {
      const opens = nextOpening(windows!, now);
      return d(
        [],
        [
          `outside the deployment window; next opens ${opens === null ? 'never (check policy.windows)' : new Date(opens).toISOString()}`,
        ],
      );
    }
    const kind = weight === null ? 'promote' : shadow ? null : 'step';
    if (kind && (policy.approvals ?? []).includes(kind === 'step' ? 'steps' : 'promote')) {
      const was = progress.awaitingApproval;
      const same = was && was.kind === kind && was.weight === (weight ?? undefined);
      const target = weight !== null ? { weight } : {};
      const awaiting: AwaitingApproval = same
        ? was
        : { kind, ...target, since: now, canaryRequests: canary.n, reasons };
      return d(
        [{ type: 'await_approval', kind, ...target }],
        [
          `waiting for approval to ${approvalTarget(awaiting)} since ${new Date(awaiting.since).toISOString()} (POST …/approve)`,
        ],
        { ...next, awaitingApproval: awaiting },
      );
    }
    if (weight !== null) {
      // The finished step (or the shadow phase, at weight 0) becomes a stratum; the next step's
      // latency limits come from the baseline's latency during it (the most recent load), or
      // carry over when it had none.
      const nextLimits = latencyLimits(policy, baselineNow) ?? limits;
      return d(
        [shadow ? { type: 'advance', weight, fromShadow: true } : { type: 'advance', weight }],
        shadow ? ['shadow passed: the canary goes live'] : [],
        {
          ...next,
          phase: undefined,
          strata,
          lastStep: null,
          weight,
          stepStartedAt: now,
          limits: nextLimits,
          awaitingApproval: null,
        },
      );
    }
    return d([{ type: 'promote' }]);
  }
}

/**
 * A weight changed outside decide() (by hand): the current step, as the last analysis saw it,
 * becomes a stratum and a new step starts. Its latency limits are fixed afresh.
 */
export function foldStep(progress: CanaryProgress, weight: number, at: number): CanaryProgress {
  const strata = progress.lastStep ? [...(progress.strata ?? []), progress.lastStep] : (progress.strata ?? []);
  // A weight set by hand also ends a shadow phase (the person chose to go live) and whatever
  // waited for approval (the person chose the step).
  return {
    ...progress,
    strata,
    lastStep: null,
    weight,
    stepStartedAt: at,
    limits: null,
    phase: undefined,
    awaitingApproval: null,
  };
}
