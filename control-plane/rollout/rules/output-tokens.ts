import type { RuleEvidence } from '../../model/verdict.js';
import { MIN_REFERENCE_STREAMS } from '../evidence/counts.js';
import type { RuleContext } from '../evidence/one-sample.js';
import { streamShareRule } from '../evidence/stream-share.js';

/**
 * A cost guard, off unless `thresholds.outputTokensRatio` is set: the canary's median answer
 * length (output tokens) within that ratio × the baseline's. Length is never judged as latency.
 */
export function outputTokensRule(ctx: RuleContext): RuleEvidence | null {
  const ratio = ctx.policy.thresholds.outputTokensRatio;
  if (!ratio) return null;
  return streamShareRule(ctx, {
    rule: 'output_tokens',
    pick: (c) => ({ n: c.tokensN ?? 0, over: c.longAnswers ?? 0 }),
    limitOf: (l) => l?.tokensLimit,
    limitText: (limit) =>
      `canary median output tokens ≤ ${ratio} × baseline's${limit !== null ? ` = ${Math.round(limit)}` : ''}`,
    what: 'answer-length',
    waiting: `waiting for ${MIN_REFERENCE_STREAMS} baseline streams to fix the answer-length limit from the baseline's median`,
  });
}
