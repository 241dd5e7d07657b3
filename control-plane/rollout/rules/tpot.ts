import type { RuleEvidence } from '../../model/verdict.js';
import { MIN_REFERENCE_STREAMS } from '../evidence/counts.js';
import type { RuleContext } from '../evidence/one-sample.js';
import { streamShareRule } from '../evidence/stream-share.js';
import { ms } from '../evidence/text.js';

/**
 * Time per output token of streamed answers: the canary's median TPOT within tpotRatio × the
 * baseline's (how fast its tokens come once they come; the first token is the latency rules').
 */
export function tpotRule(ctx: RuleContext): RuleEvidence {
  const ratio = ctx.policy.thresholds.tpotRatio ?? 1.2;
  return streamShareRule(ctx, {
    rule: 'tpot',
    pick: (c) => ({ n: c.tpotN ?? 0, over: c.slowTpot ?? 0 }),
    limitOf: (l) => l?.tpotMs,
    limitText: (limit) =>
      `canary median time per output token ≤ ${ratio} × baseline's${limit !== null ? ` = ${ms(limit)}` : ''}`,
    what: 'time-per-token',
    waiting: `waiting for ${MIN_REFERENCE_STREAMS} baseline streams to fix the time-per-token limit from the baseline's median`,
  });
}
