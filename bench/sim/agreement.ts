/**
 * The shadow gate's agreement rule, replayed through the real decide() on a fake clock: a look
 * every 30 s with 100 compared answers per look, 1,000 seeded shadow phases per case. Prints,
 * per true agreement rate, how often the gate rolled back, passed (and after how many compared
 * answers), or had not decided after an hour. `npm run sim:agreement`.
 */

import { seededRandom } from '../../common/random.js';
import { resolvePolicy } from '../../control-plane/model/policy.js';
import type { CanaryProgress } from '../../control-plane/model/progress.js';
import { decide } from '../../control-plane/rollout/decide.js';
import { noAgreement, summarize } from '../../proxy/contract/stats.js';

function run(p: number, seed: number, relative: boolean, noise: number | null) {
  const policy = resolvePolicy({
    interval: '30s',
    shadow: { compare: { field: '/p' }, agreementMin: 0.95, minRequests: 200, relativeToNoise: relative },
  });
  const rnd = seededRandom(seed);
  let progress: CanaryProgress = { weight: 0, stepStartedAt: 0, paused: false, p99BreachSince: null, phase: 'shadow' };
  const a = noAgreement(),
    nz = noAgreement();
  for (let look = 1; look <= 120; look++) {
    for (let i = 0; i < 100; i++) {
      a.compared++;
      if (rnd() < p) a.agreed++;
    }
    if (noise !== null)
      for (let i = 0; i < 20; i++) {
        nz.noiseCompared++;
        if (rnd() < noise) nz.noiseAgreed++;
      }
    const mk = (v: string, ag: any) => ({
      ...summarize('m', v, 0, 0, a.compared, 0, 0, new Map()),
      histogram: undefined,
      agreement: ag,
    });
    const d = decide(progress, policy, { canary: mk('v2', { ...a }), baseline: mk('v1', { ...nz }) }, look * 30_000, {
      explain: false,
    });
    const r = d.rules.find((r) => r.rule === 'agreement')!;
    if (r.status === 'fail') return ['fail', a.compared] as const;
    if (r.status === 'pass' && a.compared >= 200) return ['pass', a.compared] as const;
    progress = d.progress;
  }
  return ['undecided', a.compared] as const;
}
const N = 1000;
for (const [p, rel, noise] of [
  [0.99, false, null],
  [0.95, false, null],
  [0.93, false, null],
  [0.9, false, null],
  [0.73, false, null],
  [0.84, true, 0.85],
  [0.84, false, 0.85],
  [0.7, true, 0.85],
] as const) {
  const rs = Array.from({ length: N }, (_, i) => run(p, 5000 + i, rel, noise));
  const k = (o: string) => rs.filter((r) => r[0] === o);
  const med = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? '-';
  console.log(
    `agreement ${p}${noise !== null ? ` noise ${noise}${rel ? ' relativeToNoise' : ''}` : ''}: fail ${k('fail').length}/${N} (median ${med(k('fail').map((r) => r[1]))} compared), pass ${k('pass').length}/${N} (median ${med(k('pass').map((r) => r[1]))}), undecided ${k('undecided').length}`,
  );
}
