import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { parse } from 'yaml';
import { checkProtoJson } from '../../control-plane/xds/proto-json.js';

const BOOTSTRAP = 'envoy.config.bootstrap.v3.Bootstrap';

test("envoy/envoy.yaml is a valid Bootstrap per Envoy's protos", () => {
  const bootstrap = parse(readFileSync('envoy/envoy.yaml', 'utf8'));
  assert.deepEqual(checkProtoJson(BOOTSTRAP, bootstrap), []);
  assert.equal(bootstrap.admin.address.socket_address.address, '127.0.0.1', 'admin stays on loopback');
  assert.equal(bootstrap.dynamic_resources.ads_config.transport_api_version, 'V3');
});

test('the bootstrap check catches typos, bad enums, bad durations and unknown @types', () => {
  const good = parse(readFileSync('envoy/envoy.yaml', 'utf8'));
  const cases: [string, (b: any) => void, RegExp][] = [
    [
      'misspelt field',
      (b) => {
        b.admin.adress = b.admin.address;
        delete b.admin.address;
      },
      /admin\.adress: unknown field/,
    ],
    [
      'bad enum',
      (b) => {
        b.dynamic_resources.ads_config.api_type = 'GRCP';
      },
      /api_type: "GRCP" is not one of/,
    ],
    [
      'bad duration',
      (b) => {
        b.static_resources.clusters[0].connect_timeout = 'five seconds';
      },
      /connect_timeout: expected a duration/,
    ],
    [
      'unknown @type',
      (b) => {
        b.static_resources.listeners[0].filter_chains[0].filters[0].typed_config['@type'] =
          'type.googleapis.com/envoy.Nope';
      },
      /unknown @type/,
    ],
    [
      'typo inside an Any',
      (b) => {
        b.static_resources.listeners[0].filter_chains[0].filters[0].typed_config.stat_prefx = 'x';
      },
      /stat_prefx: unknown field of HttpConnectionManager/,
    ],
    [
      'wrong type',
      (b) => {
        b.admin.address.socket_address.port_value = 'nine';
      },
      /port_value: expected a number/,
    ],
  ];
  for (const [what, mutate, message] of cases) {
    const b = structuredClone(good);
    mutate(b);
    const errors = checkProtoJson(BOOTSTRAP, b);
    assert.ok(
      errors.some((e) => message.test(e)),
      `${what}: ${errors.join('; ') || 'no error'}`,
    );
  }
});
