import net from 'node:net';

/**
 * A TCP relay in front of a real PostgreSQL, for faults a client meets on the network: it
 * reads the client's side of the wire protocol to count the statements sent (simple Query and
 * extended Parse messages), and can refuse — cut every connection and turn new ones away — or
 * swallow the server's answers (the server applied the statement; the client never hears).
 */
export async function startPgRelay(targetUrl: string) {
  const target = new URL(targetUrl);
  const sql: string[] = [];
  const sockets = new Set<net.Socket>();
  let refusing = false;
  let swallowing = false;
  const server = net.createServer((client) => {
    if (refusing) return client.destroy();
    const upstream = net.connect(Number(target.port || 5432), target.hostname);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {});
    }
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    let buf = Buffer.alloc(0);
    let started = false;
    client.on('data', (chunk: Buffer) => {
      upstream.write(chunk);
      buf = Buffer.concat([buf, chunk]);
      for (;;) {
        if (!started) {
          // Startup (and SSLRequest) messages have no type byte: int32 length, then the body.
          if (buf.length < 8) return;
          const len = buf.readInt32BE(0);
          if (buf.length < len) return;
          if (buf.readInt32BE(4) !== 80877103) started = true; // 80877103: SSLRequest, a startup follows
          buf = buf.subarray(len);
          continue;
        }
        if (buf.length < 5) return;
        const type = String.fromCharCode(buf[0]);
        const len = buf.readInt32BE(1);
        if (buf.length < 1 + len) return;
        const body = buf.subarray(5, 1 + len);
        if (type === 'Q') sql.push(body.toString('utf8', 0, body.indexOf(0)));
        if (type === 'P') {
          const nameEnd = body.indexOf(0);
          sql.push(body.toString('utf8', nameEnd + 1, body.indexOf(0, nameEnd + 1)));
        }
        buf = buf.subarray(1 + len);
      }
    });
    upstream.on('data', (chunk: Buffer) => {
      if (!swallowing) client.write(chunk);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const relayed = new URL(targetUrl);
  relayed.hostname = '127.0.0.1';
  relayed.port = String((server.address() as net.AddressInfo).port);
  return {
    url: relayed.toString(),
    /** Statements sent through the relay so far whose SQL matches. */
    statements: (re: RegExp) => sql.filter((s) => re.test(s)).length,
    /** Cuts every connection and turns new ones away while on. */
    refuse(on: boolean) {
      refusing = on;
      if (on) for (const s of sockets) s.destroy();
    },
    /** While on, the server's answers are dropped; turning it off cuts the connections that lost them. */
    swallow(on: boolean) {
      swallowing = on;
      if (!on) for (const s of sockets) s.destroy();
    },
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}
