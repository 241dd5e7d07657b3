import http2 from 'node:http2';

/** gRPC codes a probe reads: a server that answers anything but UNAVAILABLE is up. */
const OK = 0;
const UNIMPLEMENTED = 12;
const UNAVAILABLE = 14;

/** An empty grpc.health.v1.HealthCheckRequest (service "": the whole server), length-prefixed. */
const EMPTY_HEALTH_CHECK = Buffer.from([0, 0, 0, 0, 0]);

/**
 * Probes an `h2c://` model server with gRPC's standard health check (grpc.health.v1.Health/Check,
 * which Triton, TF Serving and KServe runtimes serve). A server without the health service
 * (UNIMPLEMENTED) still answered, so it is up, as an HTTP server without /healthz is; a
 * NOT_SERVING answer or UNAVAILABLE is down.
 */
export function probeGrpcHealth(url: string, timeoutMs: number): Promise<{ healthy: boolean; error: string | null }> {
  return new Promise((resolve) => {
    const u = new URL(url);
    const session = http2.connect(`http://${u.host}`);
    const done = (healthy: boolean, error: string | null) => {
      clearTimeout(timer);
      session.destroy();
      resolve({ healthy, error });
    };
    const timer = setTimeout(() => done(false, `gRPC health check: no answer in ${timeoutMs} ms`), timeoutMs);
    session.on('error', (err) => done(false, `gRPC health check: ${err.message}`));
    const stream = session.request({
      ':method': 'POST',
      ':path': '/grpc.health.v1.Health/Check',
      'content-type': 'application/grpc',
      te: 'trailers',
    });
    stream.on('error', (err) => done(false, `gRPC health check: ${err.message}`));
    let headers: http2.IncomingHttpHeaders = {};
    let body = Buffer.alloc(0);
    stream.on('response', (h) => {
      headers = h;
    });
    stream.on('data', (c: Buffer) => {
      body = Buffer.concat([body, c]);
    });
    stream.on('trailers', (t) => Object.assign(headers, t));
    stream.on('end', () => {
      const code = Number(headers['grpc-status'] ?? -1);
      if (code === UNIMPLEMENTED) return done(true, null);
      if (code === UNAVAILABLE || code !== OK)
        return done(false, `gRPC health check answered grpc-status ${headers['grpc-status'] ?? 'none'}`);
      // HealthCheckResponse { status = 1 (SERVING) }: field 1, varint → bytes 0x08 0x01 after the 5-byte prefix.
      const serving = body.length >= 7 && body[5] === 0x08 && body[6] === 0x01;
      done(serving, serving ? null : 'gRPC health check: not SERVING');
    });
    stream.end(EMPTY_HEALTH_CHECK);
  });
}
