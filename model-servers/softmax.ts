/**
 * Multinomial logistic regression trained by full-batch gradient descent on standardised
 * inputs. Small, exact and deterministic: enough to be a real model with real accuracy.
 */
export interface SoftmaxModel {
  classes: readonly string[];
  mean: number[];
  std: number[];
  /** weights[class][feature + 1] (index 0 is the bias). */
  weights: number[][];
}

export interface TrainOptions {
  epochs: number;
  learningRate: number;
  l2: number;
}

function softmax(z: number[]): number[] {
  const m = Math.max(...z);
  const e = z.map((v) => Math.exp(v - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
}

export function train(x: number[][], y: string[], classes: readonly string[], opts: TrainOptions): SoftmaxModel {
  const d = x[0].length;
  const mean = Array.from({ length: d }, (_, j) => x.reduce((a, r) => a + r[j], 0) / x.length);
  const std = Array.from(
    { length: d },
    (_, j) => Math.sqrt(x.reduce((a, r) => a + (r[j] - mean[j]) ** 2, 0) / x.length) || 1,
  );
  const xs = x.map((r) => r.map((v, j) => (v - mean[j]) / std[j]));
  const yi = y.map((c) => classes.indexOf(c));
  const w = classes.map(() => new Array(d + 1).fill(0));
  for (let epoch = 0; epoch < opts.epochs; epoch++) {
    const grad = classes.map(() => new Array(d + 1).fill(0));
    for (let i = 0; i < xs.length; i++) {
      const p = softmax(w.map((wk) => wk[0] + xs[i].reduce((a, v, j) => a + v * wk[j + 1], 0)));
      for (let k = 0; k < classes.length; k++) {
        const err = p[k] - (yi[i] === k ? 1 : 0);
        grad[k][0] += err;
        for (let j = 0; j < d; j++) grad[k][j + 1] += err * xs[i][j];
      }
    }
    for (let k = 0; k < classes.length; k++) {
      for (let j = 0; j <= d; j++) {
        const reg = j === 0 ? 0 : opts.l2 * w[k][j];
        w[k][j] -= opts.learningRate * (grad[k][j] / xs.length + reg);
      }
    }
  }
  return { classes, mean, std, weights: w };
}

export function predictProba(model: SoftmaxModel, x: number[]): number[] {
  const xs = x.map((v, j) => (v - model.mean[j]) / model.std[j]);
  return softmax(model.weights.map((wk) => wk[0] + xs.reduce((a, v, j) => a + v * wk[j + 1], 0)));
}
