import net from 'node:net';

/**
 * A TCP relay in front of a real server (Redis here) that loses answers the way a flaky
 * network does: after the client sends a command matching `marks` (a stats flush), every
 * `every`-th time, the server's answer is dropped — the server has applied the command — and
 * the connection is cut a moment later. The client cannot tell whether its write happened.
 */
export async function startLossyRelay(target: { host: string; port: number }, marks: RegExp, every = 2) {
  const sockets = new Set<net.Socket>();
  let seen = 0;
  let lost = 0;
  let losing = true;
  const server = net.createServer((client) => {
    const upstream = net.connect(target.port, target.host);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {});
    }
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    let swallowing = false;
    client.on('data', (chunk: Buffer) => {
      upstream.write(chunk);
      if (!losing || swallowing || !marks.test(chunk.toString('latin1'))) return;
      seen++;
      if (seen % every !== 0) return;
      // This write reaches the server; its answer never reaches the client.
      swallowing = true;
      lost++;
      setTimeout(() => {
        client.destroy();
        upstream.destroy();
      }, 50);
    });
    upstream.on('data', (chunk: Buffer) => {
      if (!swallowing) client.write(chunk);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    /** Writes whose answers were lost so far. */
    get lost() {
      return lost;
    },
    /** Stops losing answers (the network heals). */
    heal() {
      losing = false;
    },
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}
