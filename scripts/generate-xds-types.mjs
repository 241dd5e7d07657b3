// Generates TypeScript types for Envoy's xDS protos (as @grpc/grpc-js-xds ships them) into
// control-plane/xds/generated/. Run by `npm install` (prepare) and before tests; the output is
// never edited and never committed.
import { execFileSync } from 'node:child_process';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const require = createRequire(import.meta.url);
const deps = path.join(path.dirname(require.resolve('@grpc/grpc-js-xds/package.json')), 'deps');
const out = path.join(root, 'control-plane/xds/generated');
const files = [
  'envoy/service/discovery/v3/ads.proto',
  'envoy/config/listener/v3/listener.proto',
  'envoy/config/route/v3/route.proto',
  'envoy/config/cluster/v3/cluster.proto',
  'envoy/config/endpoint/v3/endpoint.proto',
  'envoy/config/bootstrap/v3/bootstrap.proto',
  'envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto',
  'envoy/extensions/filters/http/router/v3/router.proto',
];
if (existsSync(out)) rmSync(out, { recursive: true });
const bin = path.join(
  path.dirname(require.resolve('@grpc/proto-loader/package.json')),
  'build/bin/proto-loader-gen-types.js',
);
execFileSync(
  process.execPath,
  [
    bin,
    '--keepCase',
    '--longs',
    'String',
    '--enums',
    'String',
    '--defaults',
    '--oneofs',
    '--grpcLib',
    '@grpc/grpc-js',
    '--includeDirs',
    ...['envoy-api', 'xds', 'googleapis', 'protoc-gen-validate'].map((d) => path.join(deps, d)),
    '-O',
    out,
    ...files,
  ],
  { stdio: ['ignore', 'ignore', 'inherit'] },
);
// The generator writes extensionless imports, which TypeScript accepts in CommonJS files only.
writeFileSync(path.join(out, 'package.json'), '{ "type": "commonjs" }\n');
console.log(`xDS types generated in ${path.relative(root, out)}`);
