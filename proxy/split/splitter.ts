import { KEY_GROUPS } from '../contract/key-groups.js';
import type { DeploymentRoute, Role, Upstream } from '../contract/route-table.js';

/** Sticky keys hash into this many buckets; a weight of w% owns buckets [0, w*100). */
export const BUCKETS = 10_000;

/** FNV-1a, 32 bit: fast, dependency-free and well spread for short ids. */
export function hashKey(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  // A final avalanche (murmur3's fmix32) so keys differing in the last character spread too.
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

export function bucketOf(key: string): number {
  return hashKey(key) % BUCKETS;
}

/**
 * The key's group in the stats (proxy/contract/key-groups.ts): the hash's high part, so a
 * weight's buckets spread over every group and a group holds users of either variant alike.
 */
export function keyGroupOf(key: string): number {
  return Math.floor(hashKey(key) / BUCKETS) % KEY_GROUPS;
}

export interface Pick {
  role: Role;
  upstream: Upstream;
}

/**
 * Chooses the variant for one request. Pure: the same (route, key) always gives the same
 * answer, and with no key the draw comes from `random` (injectable for tests).
 *
 * - no canary, or weight 0 → baseline; weight 100 → canary (both exact);
 * - with a key: bucket < weight·100 → canary. Raising the weight only adds buckets, so a
 *   key already on the canary stays there as the ramp goes up (monotone ramp).
 */
export function pickVariant(route: DeploymentRoute, key?: string, random: () => number = Math.random): Pick {
  const canary = route.canary;
  if (!canary || canary.weight <= 0) return { role: 'baseline', upstream: route.baseline };
  if (canary.weight >= 100) return { role: 'canary', upstream: canary };
  const threshold = Math.round(canary.weight * (BUCKETS / 100));
  const bucket = key ? bucketOf(key) : Math.floor(random() * BUCKETS);
  return bucket < threshold ? { role: 'canary', upstream: canary } : { role: 'baseline', upstream: route.baseline };
}
