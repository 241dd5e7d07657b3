/** Business outcomes (POST /v1/feedback) of one version over a span: what the business rule judges. */
export interface OutcomeStats {
  /** Outcomes received for predictions of this version. */
  n: number;
  mean: number;
  /** Sample variance (n − 1 denominator); 0 when n < 2. */
  variance: number;
}
