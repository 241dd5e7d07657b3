import protobuf from 'protobufjs';
import { protoRoot } from './codec.js';

/**
 * A strict check of a config written in protobuf's JSON/YAML mapping (an Envoy bootstrap)
 * against the real message types: unknown fields, wrong enum names, bad durations and
 * unknown `@type`s are all errors, so a typo cannot slip through. protobufjs's own
 * fromObject() silently drops unknown fields, which is why this walks the types itself.
 */
const WRAPPERS = new Set([
  'DoubleValue',
  'FloatValue',
  'Int64Value',
  'UInt64Value',
  'Int32Value',
  'UInt32Value',
  'BoolValue',
  'StringValue',
  'BytesValue',
]);
const INTS = new Set([
  'int32',
  'uint32',
  'sint32',
  'fixed32',
  'sfixed32',
  'int64',
  'uint64',
  'sint64',
  'fixed64',
  'sfixed64',
]);

export function checkProtoJson(typeName: string, value: unknown): string[] {
  const errors: string[] = [];
  const root = protoRoot();
  checkMessage(root.lookupType(typeName), value, typeName.split('.').pop()!, errors, root);
  return errors;
}

function checkMessage(type: protobuf.Type, value: unknown, at: string, errors: string[], root: protobuf.Root): void {
  const full = type.fullName.replace(/^\./, '');
  if (full === 'google.protobuf.Duration') {
    if (!(typeof value === 'string' && /^-?\d+(\.\d+)?s$/.test(value)) && !(value && typeof value === 'object'))
      errors.push(`${at}: expected a duration like "5s"`);
    return;
  }
  if (full === 'google.protobuf.Struct' || full === 'google.protobuf.Value' || full === 'google.protobuf.ListValue')
    return;
  if (full === 'google.protobuf.Timestamp') {
    if (typeof value !== 'string') errors.push(`${at}: expected an RFC 3339 time`);
    return;
  }
  if (full.startsWith('google.protobuf.') && WRAPPERS.has(type.name)) {
    if (value === null || typeof value === 'object')
      errors.push(`${at}: expected a ${type.name.replace('Value', '').toLowerCase()} value`);
    return;
  }
  if (!value || typeof value !== 'object' || Array.isArray(value)) {
    errors.push(`${at}: expected an object (${type.name})`);
    return;
  }
  const obj = value as Record<string, unknown>;
  if (full === 'google.protobuf.Any') {
    const url = obj['@type'];
    if (typeof url !== 'string') {
      errors.push(`${at}: an Any needs "@type"`);
      return;
    }
    let inner: protobuf.Type;
    try {
      inner = root.lookupType(url.slice(url.lastIndexOf('/') + 1));
    } catch {
      errors.push(`${at}: unknown @type ${url}`);
      return;
    }
    const { '@type': _t, ...rest } = obj;
    checkMessage(inner, rest, at, errors, root);
    return;
  }
  const setOneofs = new Map<string, string>();
  for (const [key, v] of Object.entries(obj)) {
    const field =
      type.fields[key] ?? Object.values(type.fields).find((f) => f.options?.json_name === key || camel(f.name) === key);
    if (!field) {
      errors.push(`${at}.${key}: unknown field of ${type.name}`);
      continue;
    }
    if (field.partOf) {
      const other = setOneofs.get(field.partOf.name);
      if (other) errors.push(`${at}: ${other} and ${key} are both set, but only one of ${field.partOf.name} may be`);
      setOneofs.set(field.partOf.name, key);
    }
    const where = `${at}.${key}`;
    if (field instanceof protobuf.MapField) {
      if (!v || typeof v !== 'object') {
        errors.push(`${where}: expected a map`);
        continue;
      }
      for (const [k, mv] of Object.entries(v)) checkValue(field, mv, `${where}.${k}`, errors, root);
    } else if (field.repeated) {
      if (!Array.isArray(v)) {
        errors.push(`${where}: expected a list`);
        continue;
      }
      for (const [i, item] of v.entries()) checkValue(field, item, `${where}[${i}]`, errors, root);
    } else {
      checkValue(field, v, where, errors, root);
    }
  }
}

function checkValue(field: protobuf.Field, v: unknown, at: string, errors: string[], root: protobuf.Root): void {
  const rt = field.resolvedType;
  if (rt instanceof protobuf.Type) {
    checkMessage(rt, v, at, errors, root);
    return;
  }
  if (rt instanceof protobuf.Enum) {
    if (typeof v === 'number' ? !Object.values(rt.values).includes(v) : typeof v !== 'string' || !(v in rt.values)) {
      errors.push(`${at}: ${JSON.stringify(v)} is not one of ${Object.keys(rt.values).join(', ')}`);
    }
    return;
  }
  if (field.type === 'bool' && typeof v !== 'boolean') errors.push(`${at}: expected true or false`);
  else if (field.type === 'string' && typeof v !== 'string') errors.push(`${at}: expected a string`);
  else if (
    (INTS.has(field.type) || field.type === 'double' || field.type === 'float') &&
    typeof v !== 'number' &&
    !(typeof v === 'string' && /^-?\d+(\.\d+)?$/.test(v))
  )
    errors.push(`${at}: expected a number`);
}

const camel = (s: string) => s.replace(/_([a-z0-9])/g, (_m, c: string) => c.toUpperCase());
