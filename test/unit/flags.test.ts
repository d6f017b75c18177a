/** The shared parsers of src/commands/flags.ts: what each accepts, what it refuses and how it says so. */
import { InvalidArgumentError } from 'commander';
import { describe, expect, it } from 'vitest';
import { httpUrl, idList, jobParams, jsonObject, keyValue, nonNegativeInt, port, positiveInt, positiveSeconds } from '../../src/commands/flags.js';
import { UsageError } from '../../src/util/errors.js';

const refuses = (fn: () => unknown, msg: RegExp) => {
  try {
    fn();
    expect.unreachable();
  } catch (e) {
    expect(e).toBeInstanceOf(InvalidArgumentError);
    expect((e as Error).message).toMatch(msg);
  }
};

describe('flag parsers', () => {
  it('numbers: integers, ranges, no empty strings', () => {
    expect(positiveInt('8')).toBe(8);
    for (const v of ['0', '-1', '1.5', '', ' ', 'x', '1e400']) refuses(() => positiveInt(v), /positive integer/);
    expect(nonNegativeInt('0')).toBe(0);
    refuses(() => nonNegativeInt('-3'), /whole number/);
    expect(positiveSeconds('0.5')).toBe(0.5);
    for (const v of ['0', 'Infinity', 'soon']) refuses(() => positiveSeconds(v), /positive number of seconds/);
    expect(port('0')).toBe(0);
    expect(port('65535')).toBe(65535);
    refuses(() => port('65536'), /0–65535/);
  });
  it('URLs: http(s) only, trailing slashes dropped', () => {
    expect(httpUrl('http://127.0.0.1:8188/')).toBe('http://127.0.0.1:8188');
    refuses(() => httpUrl('notaurl'), /http\(s\) URL/);
    refuses(() => httpUrl('ftp://host/'), /not ftp:/);
  });
  it('JSON objects and key=value pairs', () => {
    expect(jsonObject('{"a":1}')).toEqual({ a: 1 });
    refuses(() => jsonObject('[1]'), /not a JSON object \(got an array\)/);
    refuses(() => jsonObject('{'), /not a JSON object/);
    const kv = keyValue('frames=9', keyValue('align=false', keyValue('prompt=a b', undefined)));
    expect(kv).toEqual({ prompt: 'a b', align: false, frames: 9 });
    expect(keyValue('x=', undefined)).toEqual({ x: '' });
    refuses(() => keyValue('=1', undefined), /key=value/);
  });
  it('id lists name the unknown ids and the known ones', () => {
    expect(idList(['a', 'b'])('a, b')).toEqual(['a', 'b']);
    refuses(() => idList(['a', 'b'])('a,c'), /unknown id\(s\) c \(known: a, b\)/);
  });
  it('job parameters: --set over --params, --seed over both, every bad field in one usage error', () => {
    expect(jobParams({ params: { frames: 9, width: 256 }, set: { frames: 13 }, seed: 4 })).toEqual({ frames: 13, width: 256, seed: 4 });
    try {
      jobParams({ set: { frames: 'abc', height: 10 } });
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(UsageError);
      expect((e as UsageError).exitCode).toBe(2);
      expect((e as Error).message).toMatch(/height: height must be at least 64.*frames: frames must be a number/);
    }
  });
});
