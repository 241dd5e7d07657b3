import { type AddressPolicy, AddressPolicyError } from '../../common/address-policy.js';
import { CanaryError } from '../../common/errors.js';
import { UPSTREAM_SCHEMES, urlOrigin } from '../../proxy/contract/route-table.js';

/** Checks of what people name in commands: deployment and version names, model server URLs. */

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

/** "127.0.0.1:8002" or "model:8000" is a URL without its scheme: say what to write. */
function schemeHint(url: string): string {
  return url.includes('://')
    ? ''
    : ` (a model server URL starts with its scheme: http://${url}, or h2c://${url} for gRPC)`;
}

export function checkUrl(url: unknown, field: string): string {
  if (typeof url !== 'string') throw new CanaryError('BAD_REQUEST', `${field}: expected a URL string`);
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new CanaryError('BAD_REQUEST', `${field}: not a URL: ${JSON.stringify(url)}${schemeHint(url)}`);
  }
  if (!UPSTREAM_SCHEMES.has(u.protocol))
    throw new CanaryError(
      'BAD_REQUEST',
      `${field}: only http, https and h2c (HTTP/2 with prior knowledge: gRPC) model servers are supported${schemeHint(url)}`,
    );
  if (u.search || u.hash)
    throw new CanaryError(
      'BAD_REQUEST',
      `${field}: a query string or fragment is not allowed in a model server URL (requests keep their own): ${JSON.stringify(url)}`,
    );
  if (u.username || u.password)
    throw new CanaryError('BAD_REQUEST', `${field}: credentials in a model server URL are not allowed`);
  // The path is a prefix every request keeps: http://h/models/iris receives /models/iris/predict.
  return urlOrigin(u) + u.pathname.replace(/\/+$/, '');
}

export function checkName(v: unknown, field: string): string {
  if (typeof v !== 'string' || !NAME_RE.test(v))
    throw new CanaryError(
      'BAD_REQUEST',
      `${field}: 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit`,
    );
  return v;
}

/** A model server URL must be one canary-mesh may connect to (checked again at every connect by the proxies). */
export async function allowedUrl(policy: AddressPolicy | undefined, url: string, field: string): Promise<string> {
  try {
    await policy?.checkUrl(url);
  } catch (err) {
    if (err instanceof AddressPolicyError) throw new CanaryError('UPSTREAM_NOT_ALLOWED', `${field}: ${err.message}`);
    throw err;
  }
  return url;
}
