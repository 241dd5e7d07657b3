/** The name of a model version's Envoy cluster: what xDS programs and what the Envoy PromQL reads back. */
export const clusterName = (deployment: string, version: string) => `${deployment}__${version}`;
