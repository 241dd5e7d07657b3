import { DATA_VERSION, type Features, loadIris, type Row, SPECIES, trainTestSplit } from './iris.js';
import { predictProba, type SoftmaxModel, train } from './softmax.js';

/** Thrown when a model cannot score an input it accepted: the server answers 500. */
export class ModelFailure extends Error {
  readonly code = 'MODEL_FAILURE';
}

export interface Prediction {
  prediction: string;
  probability: number;
}

export interface TrainedModel {
  name: ModelName;
  description: string;
  trainedAt: string;
  dataVersion: string;
  /** Offline accuracy on the held-out 30% of the data set (rows the model could score). */
  accuracy: number;
  testRows: number;
  predict(features: Features): Prediction;
}

/**
 * The reference models. Each turns features into a vector its classifier was trained on:
 * - v1: all four measurements — the strong baseline.
 * - v2: sepal measurements only, with a log(sepal_width − 2.5) feature. Rows where that is
 *   undefined were dropped as NaN during training and offline evaluation, so it looks fine
 *   offline, but it fails on the ~13% of real flowers with sepal width ≤ 2.5 cm — the kind
 *   of bug a canary exists to catch.
 * - v3: all four measurements plus petal area — a healthy successor to v1.
 * - v4: sepal length alone — it never fails and answers as fast as v1, but it agrees with v1
 *   on only about 73% of real flowers: only comparing answers (the shadow phase) shows it.
 */
const SPECS = {
  v1: {
    description: 'softmax regression on all four measurements',
    vector: (f: Features) => [f.sepal_length, f.sepal_width, f.petal_length, f.petal_width],
    options: { epochs: 400, learningRate: 0.5, l2: 0.001 },
  },
  v2: {
    description: 'softmax regression on sepal measurements with a log feature (weaker; breaks on sepal_width <= 2.5)',
    vector: (f: Features) => [f.sepal_length, Math.log(f.sepal_width - 2.5)],
    options: { epochs: 150, learningRate: 0.3, l2: 0.01 },
  },
  v3: {
    description: 'softmax regression on all four measurements plus petal area',
    vector: (f: Features) => [
      f.sepal_length,
      f.sepal_width,
      f.petal_length,
      f.petal_width,
      f.petal_length * f.petal_width,
    ],
    options: { epochs: 600, learningRate: 0.5, l2: 0.0005 },
  },
  v4: {
    description: 'softmax regression on sepal length alone (answers every flower, often differently from v1)',
    vector: (f: Features) => [f.sepal_length],
    options: { epochs: 300, learningRate: 0.5, l2: 0.001 },
  },
} as const;

export type ModelName = keyof typeof SPECS;
export const MODEL_NAMES = Object.keys(SPECS) as ModelName[];

const usable = (v: number[]) => v.every(Number.isFinite);

export function trainModel(name: ModelName, rows: Row[] = loadIris()): TrainedModel {
  const spec = SPECS[name];
  const { train: trainRows, test } = trainTestSplit(rows);
  const xy = trainRows.map((r) => ({ x: spec.vector(r.features), y: r.label })).filter((r) => usable(r.x));
  const model: SoftmaxModel = train(
    xy.map((r) => r.x),
    xy.map((r) => r.y),
    SPECIES,
    spec.options,
  );
  const predict = (features: Features): Prediction => {
    const x = spec.vector(features);
    if (!usable(x))
      throw new ModelFailure(`model ${name} produced a non-finite feature for ${JSON.stringify(features)}`);
    const p = predictProba(model, x);
    const best = p.indexOf(Math.max(...p));
    return { prediction: SPECIES[best], probability: p[best] };
  };
  const scored = test.filter((r) => usable(spec.vector(r.features)));
  const correct = scored.filter((r) => predict(r.features).prediction === r.label).length;
  return {
    name,
    description: spec.description,
    trainedAt: new Date().toISOString(),
    dataVersion: DATA_VERSION,
    accuracy: correct / scored.length,
    testRows: scored.length,
    predict,
  };
}
