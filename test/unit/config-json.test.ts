/** parseLenientJson: JSON.parse plus Python's Infinity / -Infinity / NaN, with file:line:column errors. */

import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { formatLenientJson, parseLenientJson } from '../../lib/config/json';
import { ConfigError } from '../../lib/errors';
import { parseJson } from '../../lib/util/json-parser';

describe('parseLenientJson', () => {
  test('accepts Infinity, -Infinity and NaN outside strings', () => {
    const value = parseLenientJson('{"a": -Infinity, "b": [Infinity, NaN, 1e400], "c": "NaN Infinity"}', 'x.json');
    expect(value).toEqual({ a: -Infinity, b: [Infinity, NaN, Infinity], c: 'NaN Infinity' });
  });

  test('reads a diffusers scheduler config with -Infinity', () => {
    const file = path.join(__dirname, '..', 'fixtures', 'diffusers', 'schedulers', 'dpmpp-sde', 'scheduler_config.json');
    const config = parseLenientJson(readFileSync(file, 'utf8'), file) as Record<string, unknown>;
    expect(config.lambda_min_clipped).toBe(-Infinity);
    expect(config._class_name).toBe('DPMSolverMultistepScheduler');
    expect(config.trained_betas).toBeNull();
  });

  test.each([
    '{}',
    '[]',
    ' \t\n\r{"a" : [1, -2.5e-3, 0, -0, 1E+2, true, false, null, "x\\u00e9\\n\\"\\\\\\/"]} ',
    '"\\ud83d\\ude00 and a lone \\ud800"',
    '{"__proto__": {"polluted": 1}, "constructor": 2}',
    '{"a": 1, "a": 2}',
    '12345678901234567890',
    '-0.0',
  ])('agrees with JSON.parse on %j', (text) => {
    const ours = parseLenientJson(text, 'x.json');
    expect(ours).toEqual(JSON.parse(text));
    expect(Object.keys(ours ?? {})).toEqual(Object.keys(JSON.parse(text) ?? {}));
  });

  test('"__proto__" becomes an own key and does not touch prototypes', () => {
    const value = parseLenientJson('{"__proto__": {"polluted": true}}', 'x.json') as Record<string, unknown>;
    expect(Object.hasOwn(value, '__proto__')).toBe(true);
    expect(Object.getPrototypeOf(value)).toBe(Object.prototype);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  test.each([
    ['{"a": 1,}', 'expected a string key'],
    ["{'a': 1}", 'expected a string key'],
    ['{a: 1}', 'expected a string key'],
    ['[1, 2,]', 'expected a JSON value'],
    ['// comment\n{}', 'expected a JSON value'],
    ['01', 'after the end of the JSON value'],
    ['+1', 'expected a JSON value'],
    ['.5', 'expected a JSON value'],
    ['1.', 'after the end of the JSON value'],
    ['0x10', 'after the end of the JSON value'],
    ['-', 'Malformed number'],
    ['-NaN', 'Malformed number'],
    ['infinity', 'expected a JSON value'],
    ['Infinityx', 'after the end of the JSON value'],
    ['Inf', 'expected Infinity'],
    ['"tab\there"', 'control characters must be escaped'],
    ['"\\x41"', 'Bad escape'],
    ['"\\u12G4"', 'Bad \\u escape'],
    ['"open', 'Unterminated string'],
    ['', 'end of input'],
    ['{"a" 1}', 'expected ":"'],
    ['[1 2]', 'expected "," or "]"'],
    ['{} {}', 'after the end of the JSON value'],
  ])('rejects %j like JSON.parse does', (text, reason) => {
    expect(() => JSON.parse(text.replace(/Infinity|NaN/g, 'null'))).toThrow();
    expect(() => parseLenientJson(text, 'bad.json')).toThrow(ConfigError);
    expect(() => parseLenientJson(text, 'bad.json')).toThrow(reason);
  });

  test('errors name the file, line and column', () => {
    const text = '{\n  "a": 1,\n  "b": tru\n}';
    expect(() => parseLenientJson(text, 'unet/config.json')).toThrow('unet/config.json:3:8: invalid JSON: Unexpected "t", expected true');
  });

  test('deep nesting is an error, not a stack overflow', () => {
    expect(() => parseLenientJson('['.repeat(100_000), 'deep.json')).toThrow('Nesting deeper than');
  });
});

describe('parseJson duplicate keys', () => {
  test('reports each duplicate with its path, and the last value wins when the callback returns', () => {
    const seen: string[] = [];
    const value = parseJson('{"a": {"x": 1, "x": 2}, "a": [{"y": 1, "y": 3}]}', {
      onDuplicateKey: (key, where) => seen.push([...where, key].join('.')),
    });
    expect(seen).toEqual(['a.x', 'a', 'a.0.y']);
    expect(value).toEqual({ a: [{ y: 3 }] });
  });
});

describe('formatLenientJson', () => {
  test('writes non-finite numbers as Python does, and reads back', () => {
    const value = { a: -Infinity, b: [NaN, Infinity, 1.5], c: { d: 'x' }, e: [], f: {} };
    const text = formatLenientJson(value);
    expect(text).toContain('"a": -Infinity');
    expect(text).toContain('NaN');
    expect(parseLenientJson(text, 'round-trip.json')).toEqual(value);
  });

  test('matches JSON.stringify for finite values', () => {
    const value = { a: [1, { b: null, c: 'q"uote' }], d: true, e: [] as unknown[], f: {} };
    expect(formatLenientJson(value)).toBe(JSON.stringify(value, null, 2));
    expect(formatLenientJson(value, 0)).toBe(JSON.stringify(value));
  });

  test('can keep arrays of scalars on one line', () => {
    const value = { a: [32, 64], b: [[1], 2], c: ['x', null, -Infinity] };
    expect(formatLenientJson(value, 2, true)).toBe('{\n  "a": [32, 64],\n  "b": [\n    [1],\n    2\n  ],\n  "c": ["x", null, -Infinity]\n}');
  });
});
