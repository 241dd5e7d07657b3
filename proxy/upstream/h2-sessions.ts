import { lookup } from 'node:dns';
import http2 from 'node:http2';
import net, { isIP, type LookupFunction } from 'node:net';
import type { AddressPolicy } from '../../common/address-policy.js';

export interface H2SessionOptions {
  connectTimeoutMs: number;
  /** Checked at every connect, after the name resolves, as for HTTP/1.1 upstreams. */
  policy?: AddressPolicy;
}

/** `h2c://host:port` → host and port (80 when absent, as for http). */
function hostPort(origin: string): { host: string; port: number } {
  const u = new URL(origin);
  return { host: u.hostname.replace(/^\[|\]$/g, ''), port: Number(u.port || 80) };
}

/**
 * One multiplexed HTTP/2 session per `h2c://` upstream (what Triton, TF Serving and KServe serve
 * in a cluster): opened on first use, kept alive, and replaced as soon as the server sends
 * GOAWAY or the connection ends, so new calls go to a fresh session while calls already on the
 * old one finish there.
 */
export class H2Sessions {
  private readonly sessions = new Map<string, http2.ClientHttp2Session>();
  constructor(private readonly opts: H2SessionOptions) {}

  get(origin: string): http2.ClientHttp2Session {
    const open = this.sessions.get(origin);
    if (open && !open.closed && !open.destroyed) return open;
    const session = http2.connect(`http://${new URL(origin).host}`, {
      createConnection: () => this.connect(origin),
      settings: { enablePush: false },
    });
    const forget = () => {
      if (this.sessions.get(origin) === session) this.sessions.delete(origin);
    };
    session.once('goaway', forget);
    session.once('close', forget);
    // A failed connect or a broken session fails the calls on it (they see the error); the next call reconnects.
    session.on('error', forget);
    this.sessions.set(origin, session);
    return session;
  }

  private connect(origin: string): net.Socket {
    const { host, port } = hostPort(origin);
    const policy = this.opts.policy;
    const policed: LookupFunction = (hostname, options, callback) =>
      lookup(hostname, { ...options, all: true }, (err, addresses) => {
        if (err) return callback(err, '', 4);
        try {
          policy?.checkName(hostname);
          for (const a of addresses) policy?.checkAddress(hostname, a.address, port);
        } catch (refused) {
          return callback(Object.assign(refused as Error, { code: 'ECONNREFUSED' }), '', 4);
        }
        if ((options as { all?: boolean }).all)
          (callback as unknown as (e: null, a: typeof addresses) => void)(null, addresses);
        else callback(null, addresses[0].address, addresses[0].family);
      });
    const socket = net.connect({ host, port, lookup: policed, noDelay: true });
    if (isIP(host) && policy) {
      try {
        policy.checkAddress(host, host, port);
      } catch (refused) {
        process.nextTick(() => socket.destroy(Object.assign(refused as Error, { code: 'ECONNREFUSED' })));
      }
    }
    socket.setTimeout(this.opts.connectTimeoutMs, () =>
      socket.destroy(Object.assign(new Error(`connect to ${origin} timed out`), { code: 'UND_ERR_CONNECT_TIMEOUT' })),
    );
    socket.once('connect', () => socket.setTimeout(0));
    return socket;
  }

  /** Closes sessions whose origin left the table; calls in flight on them finish first. */
  retain(origins: Set<string>): void {
    for (const [origin, session] of this.sessions)
      if (!origins.has(origin)) {
        this.sessions.delete(origin);
        session.close();
      }
  }

  /** Closes every session: calls in flight get `graceMs` to finish, then the sessions are destroyed. */
  async close(graceMs = 2000): Promise<void> {
    const all = [...this.sessions.values()];
    this.sessions.clear();
    const closing = (s: http2.ClientHttp2Session) =>
      new Promise<void>((resolve) => {
        if (s.closed) return resolve();
        const force = setTimeout(() => {
          s.destroy();
          resolve();
        }, graceMs);
        force.unref();
        s.close(() => {
          clearTimeout(force);
          resolve();
        });
      });
    await Promise.all(all.map(closing));
  }
}
