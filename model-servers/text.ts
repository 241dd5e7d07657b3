import { seededRandom } from '../common/random.js';

/**
 * A tiny deterministic text generator for the reference LLM server: words drawn from a fixed
 * vocabulary by a seeded PRNG, so an answer's length and words follow from its prompt and no
 * weights are downloaded. It stands in for a model's output, not for its quality.
 */
const WORDS = (
  'the a model canary answer version traffic token stream latency safe ship user request ' +
  'baseline rollout step weight error quick slow small large first next every always never ' +
  'measure judge promote hold learn predict iris flower petal sepal length width data'
).split(' ');

/** FNV-1a of a string: the seed an answer's words follow from. */
export function hashText(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** `n` tokens (one word each, with its leading space after the first). */
export function generateTokens(seed: number, n: number): string[] {
  const rnd = seededRandom(seed);
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push((i === 0 ? '' : ' ') + WORDS[Math.floor(rnd() * WORDS.length)]);
  return out;
}
