/**
 * Per-key clustering, as the stats contract counts it. Requests routed by a sticky key
 * (`x-canary-key`) are the same users' again and again: one user's failures are not
 * independent draws, and a few uneven users can make a variant look worse than it is. The
 * proxy hashes each key into one of KEY_GROUPS groups (independently of its routing bucket)
 * and counts requests and model errors per group; the spread of the groups' error rates shows
 * how far the users' own rates differ, which the analysis turns into a variance inflation
 * (control-plane/rollout/evidence/clusters.ts). Random grouping keeps it exact however many
 * keys there are: the groups are independent sums of whole users.
 *
 * A cell's `keyed` array holds the groups' requests, then their model errors (Redis fields
 * u0…u15 and v0…v15).
 */
export const KEY_GROUPS = 16;

export const noKeyGroups = (): number[] => new Array(2 * KEY_GROUPS).fill(0);

export function addKeyGroups(into: number[], from: readonly number[]): void {
  for (let i = 0; i < 2 * KEY_GROUPS; i++) into[i] += from[i] ?? 0;
}

/** Counts one keyed request of `group`. */
export function countKeyed(into: number[], group: number, modelError: boolean): void {
  into[group]++;
  if (modelError) into[KEY_GROUPS + group]++;
}

/** The Redis hash field of a slot of `keyed` ("u3": group 3's requests, "v3": its errors). */
export const keyGroupRedisField = (slot: number) => (slot < KEY_GROUPS ? `u${slot}` : `v${slot - KEY_GROUPS}`);
export function keyGroupSlotOfRedisField(field: string): number | null {
  if (field[0] !== 'u' && field[0] !== 'v') return null;
  const g = Number(field.slice(1));
  if (!Number.isInteger(g) || g < 0 || g >= KEY_GROUPS) return null;
  return field[0] === 'u' ? g : KEY_GROUPS + g;
}

/** Keyed requests per group and their model errors, as readers see them (absent with none). */
export interface KeyGroupCounts {
  requests: number[];
  errors: number[];
}

export function keyGroupCounts(keyed: readonly number[] | undefined): KeyGroupCounts | undefined {
  if (!keyed?.some((n, i) => i < KEY_GROUPS && n > 0)) return undefined;
  return { requests: keyed.slice(0, KEY_GROUPS), errors: keyed.slice(KEY_GROUPS, 2 * KEY_GROUPS) };
}
