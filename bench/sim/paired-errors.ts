/**
 * The error and latency rules during a shadow phase, where the canary's requests are copies of
 * the baseline's (paired, not split): an input that makes one model fail often makes the other
 * fail too. A/A replays through the real decide() on a fake clock, a look every 30 s for
 * 30 minutes, 300 seeded phases per case, report how often a canary as good as the baseline
 * would be rolled back in shadow. `npm run sim:paired`.
 */

import { seededRandom } from '../../common/random.js';
import { resolvePolicy } from '../../control-plane/model/policy.js';
import type { CanaryProgress } from '../../control-plane/model/progress.js';
import { decide } from '../../control-plane/rollout/decide.js';
import { addValue } from '../../proxy/contract/histogram.js';
import { summarize } from '../../proxy/contract/stats.js';

const policy = resolvePolicy({ interval: '30s', shadow: { duration: '60m', agreementMin: 0.5, minRequests: 200 } });
function run(seed: number, shared: number, indep: number, rps: number) {
  const rnd = seededRandom(seed);
  let p: CanaryProgress = { weight: 0, stepStartedAt: 0, paused: false, p99BreachSince: null, phase: 'shadow' };
  let n = 0,
    eb = 0,
    ec = 0;
  const hb = new Map<number, number>(),
    hc = new Map<number, number>();
  for (let look = 1; look <= 60; look++) {
    for (let i = 0; i < rps * 30; i++) {
      n++;
      const s = rnd() < shared;
      if (s || rnd() < indep) eb++;
      if (s || rnd() < indep) ec++;
      addValue(hb, 20 + 30 * -Math.log(rnd()));
      addValue(hc, 20 + 30 * -Math.log(rnd()));
    }
    const ag = { compared: n, agreed: n, errors: 0, timeouts: 0, dropped: 0, noiseCompared: 0, noiseAgreed: 0 };
    const d = decide(
      p,
      policy,
      {
        canary: { ...summarize('m', 'v2', 0, 0, n, ec, 0, new Map(hc)), agreement: ag },
        baseline: summarize('m', 'v1', 0, 0, n, eb, 0, new Map(hb)),
        reference: summarize('m', 'v1', 0, 0, n, eb, 0, new Map(hb)),
      },
      look * 30_000,
      { explain: false },
    );
    if (d.verdict === 'critical')
      return d.rules
        .filter((r) => r.status === 'fail')
        .map((r) => r.rule)
        .join(',');
    p = d.progress;
  }
  return 'ok';
}
for (const [shared, indep, rps] of [
  [0.02, 0.005, 10],
  [0.02, 0.005, 100],
  [0.04, 0.0, 100],
  [0.01, 0.01, 100],
] as const) {
  const N = 300;
  const out = Array.from({ length: N }, (_, i) => run(900 + i, shared, indep, rps));
  const fails = out.filter((o) => o !== 'ok');
  console.log(
    `A/A in shadow, ${shared * 100}% of inputs fail both + ${indep * 100}% each independently, ${rps} rps, 30 min of looks: ${fails.length}/${N} rolled back ${[...new Set(fails)].join(' ')}`,
  );
}
