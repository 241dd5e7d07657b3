import { lookup as lookupCallback } from 'node:dns';
import { lookup } from 'node:dns/promises';
import { BlockList, isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import { buildConnector } from 'undici';

/**
 * Where canary-mesh may send requests on a user's behalf (model servers, alert sinks): a
 * version URL or a sink is an instruction to connect somewhere, so it must not become a way to
 * reach what the stack protects (server-side request forgery).
 *
 * Always refused: link-local addresses (169.254.0.0/16, fe80::/10 — cloud metadata services
 * live there), the metadata names, and the stack's own listening ports on this machine
 * (Redis, PostgreSQL, the API, the proxy's ports, xDS). Beyond that, CANARY_UPSTREAM_ALLOW
 * (host names and CIDRs, comma-separated) restricts targets when set; unset, anything else
 * is allowed, so a local demo keeps working. Checked when a URL is registered and again when
 * its name resolves at connect time (a DNS answer can change in between).
 */
export class AddressPolicyError extends Error {
  readonly code = 'UPSTREAM_NOT_ALLOWED';
}

const METADATA_NAMES = new Set([
  'metadata.google.internal',
  'metadata.goog',
  'metadata',
  'instance-data',
  'instance-data.ec2.internal',
]);

export interface AddressPolicyOptions {
  /** Host names and CIDRs allowed (CANARY_UPSTREAM_ALLOW); null: all but the deny list. */
  allow: string[] | null;
  /** Ports the stack listens on; refused on this machine's own addresses. */
  ownPorts: number[];
}

export class AddressPolicy {
  private readonly denied = new BlockList();
  private readonly allowed: BlockList | null;
  private readonly allowedNames: Set<string> | null;
  private readonly ownPorts: Set<number>;

  constructor(opts: AddressPolicyOptions) {
    this.denied.addSubnet('169.254.0.0', 16, 'ipv4');
    this.denied.addSubnet('fe80::', 10, 'ipv6');
    this.denied.addAddress('fd00:ec2::254', 'ipv6');
    this.ownPorts = new Set(opts.ownPorts.filter((p) => p > 0));
    if (opts.allow === null || opts.allow.length === 0) {
      this.allowed = null;
      this.allowedNames = null;
    } else {
      this.allowed = new BlockList();
      this.allowedNames = new Set();
      for (const entry of opts.allow) {
        const [addr, bits] = entry.split('/');
        const family = isIP(addr);
        if (family && bits !== undefined) this.allowed.addSubnet(addr, Number(bits), family === 6 ? 'ipv6' : 'ipv4');
        else if (family) this.allowed.addAddress(addr, family === 6 ? 'ipv6' : 'ipv4');
        else this.allowedNames.add(entry.toLowerCase());
      }
    }
  }

  /** Adds ports the stack listens on (known once it listens). */
  protect(ports: (number | null | undefined)[]): void {
    for (const p of ports) if (p && p > 0) this.ownPorts.add(p);
  }

  /** Throws AddressPolicyError when the URL's host name alone is refused (before any lookup). */
  checkName(host: string): void {
    const name = host.replace(/^\[|\]$/g, '').toLowerCase();
    if (METADATA_NAMES.has(name))
      throw new AddressPolicyError(`${host} is a cloud metadata service: never a model server or an alert sink`);
  }

  /** Throws AddressPolicyError when connecting to `address`:`port` (for host name `name`) is refused. */
  checkAddress(name: string, address: string, port: number): void {
    const family = isIP(address) === 6 ? 'ipv6' : 'ipv4';
    const plain = address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
    const plainFamily = plain === address ? family : 'ipv4';
    if (this.denied.check(plain, plainFamily))
      throw new AddressPolicyError(`${name} (${address}) is a link-local or cloud-metadata address: refused`);
    if (this.ownPorts.has(port) && isLocal(plain))
      throw new AddressPolicyError(
        `${name}:${port} is one of this stack's own services (Redis, PostgreSQL, the API, the proxy or xDS): refused`,
      );
    if (this.allowed && !this.allowed.check(plain, plainFamily) && !this.allowedNames!.has(name.toLowerCase())) {
      throw new AddressPolicyError(`${name} (${address}) is not in CANARY_UPSTREAM_ALLOW`);
    }
  }

  /** Resolves and checks a URL as a connection would (registration time). */
  async checkUrl(raw: string): Promise<void> {
    const u = new URL(raw);
    const port = Number(u.port || (u.protocol === 'https:' ? 443 : 80));
    this.checkName(u.hostname);
    const host = u.hostname.replace(/^\[|\]$/g, '');
    const addresses = isIP(host) ? [host] : (await lookup(host, { all: true }).catch(() => [])).map((a) => a.address);
    // A name that does not resolve yet is not refused here: the connect-time check still applies.
    for (const a of addresses) this.checkAddress(u.hostname, a, port);
  }
}

/** Is `address` one of this machine's (loopback, unspecified, or an interface's)? */
function isLocal(address: string): boolean {
  if (address === '0.0.0.0' || address === '::' || address === '::1' || address.startsWith('127.')) return true;
  for (const list of Object.values(networkInterfaces()))
    for (const i of list ?? []) if (i.address === address) return true;
  return false;
}

/** The port a service URL (redis://, postgres://, http://) listens on, or null. */
export function portOf(url: string | null | undefined): number | null {
  if (!url) return null;
  try {
    const u = new URL(url);
    return Number(
      u.port ||
        (u.protocol.startsWith('redis')
          ? 6379
          : u.protocol.startsWith('postgres')
            ? 5432
            : u.protocol === 'https:'
              ? 443
              : 80),
    );
  } catch {
    return null;
  }
}

/** undici's own connector, with the address policy applied to the resolved address first. */
export function policedConnector(policy: AddressPolicy, timeoutMs: number): buildConnector.connector {
  const connect = buildConnector({ timeout: timeoutMs });
  return (opts, callback) => {
    const port = Number(opts.port || (opts.protocol === 'https:' ? 443 : 80));
    const go = (address: string) => {
      try {
        policy.checkName(opts.hostname);
        policy.checkAddress(opts.hostname, address, port);
      } catch (err) {
        return callback(Object.assign(err as Error, { code: 'ECONNREFUSED' }), null);
      }
      connect(
        {
          ...opts,
          hostname: address,
          servername: opts.servername ?? (isIP(opts.hostname) ? undefined : opts.hostname),
        } as never,
        callback,
      );
    };
    const host = opts.hostname.replace(/^\[|\]$/g, '');
    if (isIP(host)) return go(host);
    lookupCallback(host, (err, address) => (err ? callback(err, null) : go(address)));
  };
}
