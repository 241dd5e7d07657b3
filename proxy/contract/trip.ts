export interface Trip {
  deployment: string;
  version: string;
  /** Epoch ms of the trip. */
  at: number;
  /** The route table the proxy was serving when it tripped. */
  tableVersion: number;
  consecutiveFailures: number;
  /** Outcomes of the run, oldest first. */
  outcomes: string[];
}
