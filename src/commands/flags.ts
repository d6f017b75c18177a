/**
 * The options several commands share, and the typed parsers behind every option of the CLI.
 * Commander runs the parsers while it parses argv (`.argParser`), so a bad value is a usage
 * error (exit 2, JSON under --json) before any command module loads or any network call.
 * Commands receive numbers, URLs and objects, never strings to re-parse.
 */
import { InvalidArgumentError } from 'commander';
import { defaultManifestPath, loadManifest, variantNames } from '../models/manifest.js';
import { ParamsError, resolveParams } from '../comfy/params.js';
import { UsageError } from '../util/errors.js';

/** One option of the command table: commander's Option, declared as data (see addCommand in src/cli.ts). */
export interface OptionDef {
  /** Commander flags, e.g. "--port <n>". */
  flags: string;
  description: string;
  /** Default value (already of the parsed type); shown by commander's help as "(default: …)". */
  default?: unknown;
  /** A default decided at run time, in words, shown the same way: "(default: <text>)". */
  defaultText?: string;
  /** Typed parser (commander's argParser); throws InvalidArgumentError. */
  parse?: (value: string, previous: never) => unknown;
  /** Allowed values (commander's choices); a function is evaluated when the CLI is built. */
  choices?: readonly string[] | ((env: NodeJS.ProcessEnv) => readonly string[] | undefined);
  /** Must be given (commander's makeOptionMandatory). */
  required?: boolean;
  /** Option names (attribute names) this one excludes (commander's conflicts). */
  conflicts?: string[];
}

// ---- parsers ---------------------------------------------------------------------------------

const num = (v: string): number => (v.trim() === '' ? Number.NaN : Number(v));

export function positiveInt(v: string): number {
  const n = num(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('expected a positive integer');
  return n;
}

export function nonNegativeInt(v: string): number {
  const n = num(v);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('expected a whole number (0 or more)');
  return n;
}

export function positiveSeconds(v: string): number {
  const n = num(v);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('expected a positive number of seconds');
  return n;
}

export function positiveGb(v: string): number {
  const n = num(v);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('expected a positive number of GB');
  return n;
}

export function nonNegativeGb(v: string): number {
  const n = num(v);
  if (!Number.isFinite(n) || n < 0) throw new InvalidArgumentError('expected a number of GB (0 or more)');
  return n;
}

export function port(v: string): number {
  const n = num(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError('expected a port number 0–65535');
  return n;
}

/** An http(s) base URL, returned without trailing slashes. */
export function httpUrl(v: string): string {
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    throw new InvalidArgumentError('expected an http(s) URL, e.g. http://127.0.0.1:8188');
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new InvalidArgumentError(`expected an http(s) URL, not ${u.protocol}`);
  return v.replace(/\/+$/, '');
}

export function jsonObject(v: string): Record<string, unknown> {
  let p: unknown;
  try {
    p = JSON.parse(v);
  } catch (err) {
    throw new InvalidArgumentError(`not a JSON object (${(err as Error).message}); e.g. '{"width":512,"height":512,"frames":33}'`);
  }
  if (typeof p !== 'object' || p === null || Array.isArray(p)) throw new InvalidArgumentError(`not a JSON object (got ${Array.isArray(p) ? 'an array' : p === null ? 'null' : typeof p})`);
  return p as Record<string, unknown>;
}

/** `key=value` (repeatable) collected into one object; numbers and booleans typed. */
export function keyValue(v: string, previous: Record<string, unknown> | undefined): Record<string, unknown> {
  const i = v.indexOf('=');
  if (i <= 0) throw new InvalidArgumentError('expected key=value');
  const raw = v.slice(i + 1);
  const value = raw === 'true' ? true : raw === 'false' ? false : raw.trim() !== '' && !Number.isNaN(Number(raw)) ? Number(raw) : raw;
  return { ...(previous ?? {}), [v.slice(0, i)]: value };
}

/** A comma list of ids, each one of `known` (when given). */
export function idList(known?: readonly string[]): (v: string) => string[] {
  return (v) => {
    const ids = v
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    if (!ids.length) throw new InvalidArgumentError('expected a comma list of ids');
    const bad = known ? ids.filter((id) => !known.includes(id)) : [];
    if (bad.length) throw new InvalidArgumentError(`unknown id(s) ${bad.join(', ')} (known: ${known!.join(', ')})`);
    return ids;
  };
}

// ---- shared options -------------------------------------------------------------------------

/** The variants of the default manifest (undefined when it cannot be read: the command then reports it). */
export function manifestVariants(env: NodeJS.ProcessEnv): readonly string[] | undefined {
  try {
    return variantNames(loadManifest(defaultManifestPath(env)));
  } catch {
    return undefined;
  }
}

export const VARIANT_DEFAULT = "$STEADYDANCER_VARIANT, else the variant the models folder holds verified, else docker/models.json's defaultVariant";

/**
 * `--variant`: commander's choices are the default manifest's variants. Commands that take
 * `--manifest` pass `choices: false`: their manifest is known only after parsing, so the
 * variant rule checks the name against it (the same usage error, listing that manifest's variants).
 */
export const variant = (description = 'model variant', defaultText = VARIANT_DEFAULT, opts: { choices?: boolean } = {}): OptionDef => ({
  flags: '--variant <name>',
  description,
  defaultText,
  ...(opts.choices === false ? {} : { choices: manifestVariants }),
});
export const engine = (): OptionDef => ({ flags: '--engine <path>', description: 'docker client', defaultText: '$STEADYDANCER_DOCKER, /usr/bin/docker, docker' });
export const composeFile = (): OptionDef => ({ flags: '--file <compose.yml>', description: 'base compose file', defaultText: 'docker/docker-compose.yml' });
export const lockFile = (): OptionDef => ({ flags: '--lock <file>', description: 'lock file', defaultText: 'docker/custom-nodes.lock.json' });
export const manifest = (): OptionDef => ({ flags: '--manifest <path>', description: 'model manifest', defaultText: '$STEADYDANCER_MODELS_MANIFEST, else docker/models.json' });
export const tokenFile = (): OptionDef => ({ flags: '--token-file <path>', description: 'read the Hugging Face token from this file', defaultText: '$HF_TOKEN' });
export const jobs = (what: string, def: number): OptionDef => ({ flags: '--jobs <n>', description: what, default: def, parse: positiveInt });
export const seconds = (flags: string, description: string, def?: number): OptionDef => ({ flags, description, parse: positiveSeconds, ...(def === undefined ? {} : { default: def }) });
export const comfyUrl = (): OptionDef => ({ flags: '--comfy-url <url>', description: 'ComfyUI base URL', default: 'http://127.0.0.1:8188', parse: httpUrl });
export const workDir = (): OptionDef => ({ flags: '--work-dir <dir>', description: 'scratch folder for job inputs', defaultText: 'a new folder under the system temp dir' });
export const params = (description = 'workflow parameters as a JSON object (width, height, frames, fps, steps, cfg, seed, variant, prompt, pose…)', defaultText?: string): OptionDef => ({
  flags: '--params <json>',
  description,
  parse: jsonObject,
  ...(defaultText ? { defaultText } : {}),
});
export const set = (description = 'one workflow parameter (repeatable), e.g. --set frames=33'): OptionDef => ({ flags: '--set <key=value>', description, parse: keyValue as OptionDef['parse'] });

export interface JobParamFlags {
  params?: Record<string, unknown>;
  set?: Record<string, unknown>;
  seed?: number;
}

/**
 * `--set` pairs over `--params`, `--seed` over both; checked with the job schema (the one the
 * worker and the local API use) so that a bad value is a usage error here, with every bad field
 * named, before anything is sent or started.
 */
export function jobParams(opts: JobParamFlags, base: Record<string, unknown> = {}): Record<string, unknown> {
  const p: Record<string, unknown> = { ...(opts.params ?? {}), ...(opts.set ?? {}) };
  if (opts.seed !== undefined) p.seed = opts.seed;
  try {
    resolveParams({ ...base, ...p }, () => 0);
  } catch (err) {
    if (err instanceof ParamsError)
      throw new UsageError(`job parameters: ${err.issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`, 'the parameters and their ranges: README "Job input" (the schema is src/comfy/params.ts)');
    throw err;
  }
  return p;
}
