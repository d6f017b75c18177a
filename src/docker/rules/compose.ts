/**
 * CP001: the compose file validates against the Compose specification's JSON schema (ajv).
 * CP002: `docker compose config -q` (or `docker-compose config -q`) accepts it, when a client
 * is installed and external checks are allowed.
 */
import { Ajv, type ErrorObject } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { parse } from 'yaml';
import { join } from 'node:path';
import composeSchema from '../schema/compose-spec.json' with { type: 'json' };
import { COMPOSE_FILES, type LintContext, type Rule } from '../lint.js';
import { probeComposeAll } from '../probe.js';
import { lineAt, locate, pointerPath } from './positions.js';

function composeFile(ctx: LintContext): string | null {
  return COMPOSE_FILES.find((f) => ctx.read(f) !== null) ?? null;
}

/** Override files beside the main one (docker-compose.gpu.yml, compose.cpu.yaml, …). */
function overrideFiles(ctx: LintContext, main: string): string[] {
  const all = [...ctx.list('docker', '.yml'), ...ctx.list('docker', '.yaml')];
  return all.filter((f) => f !== main && /^docker\/(docker-)?compose[.-][^/]*\.ya?ml$/.test(f)).sort();
}

let validator: ReturnType<Ajv['compile']> | undefined;
function compile() {
  if (!validator) {
    // The schema names draft-07 by an https $schema URL that ajv does not register; the
    // content is draft-07, which ajv implements, so the declaration is dropped.
    const { $schema: _ignored, ...schema } = composeSchema as Record<string, unknown>;
    const ajv = new Ajv({ allErrors: true, strict: false });
    const addFormats = addFormatsModule as unknown as (a: Ajv) => void;
    addFormats(ajv);
    validator = ajv.compile(schema);
  }
  return validator;
}

function describe(e: ErrorObject): string {
  const where = e.instancePath ? e.instancePath.slice(1).replace(/\//g, '.') : '(top level)';
  if (e.keyword === 'additionalProperties') return `${where}: unknown key "${(e.params as { additionalProperty: string }).additionalProperty}"`;
  if (e.keyword === 'enum') return `${where}: ${e.message} (${(e.params as { allowedValues: unknown[] }).allowedValues.join(', ')})`;
  return `${where}: ${e.message}`;
}

export const CP001: Rule = {
  id: 'CP001',
  title: 'compose file validates against the Compose specification JSON schema',
  severity: 'error',
  async check(ctx) {
    const main = composeFile(ctx);
    if (!main) return [{ file: COMPOSE_FILES[0]!, line: 1, message: 'no compose file in docker/', hint: 'restore docker/docker-compose.yml' }];
    const out = [];
    for (const file of [main, ...overrideFiles(ctx, main)]) out.push(...schemaFindings(file, ctx.read(file)!));
    return out;
  },
};

function schemaFindings(file: string, text: string) {
  const loc = locate(text);
  if (loc.doc.errors.length) {
    return loc.doc.errors.map((e) => ({ file, line: e.linePos?.[0]?.line ?? 1, message: `YAML: ${e.message.split('\n')[0]}`, hint: 'fix the YAML syntax' }));
  }
  const data = parse(text, { merge: true }) as unknown;
  const validate = compile();
  if (validate(data)) return [];
  const errors = validate.errors ?? [];
  // oneOf/anyOf wrappers repeat what their branches say; keep the most specific errors.
  const specific = errors.filter((e) => e.keyword !== 'oneOf' && e.keyword !== 'anyOf');
  const keep = specific.length ? specific : errors;
  const seen = new Set<string>();
  const out = [];
  for (const e of keep) {
    const msg = describe(e);
    if (seen.has(msg)) continue;
    seen.add(msg);
    const path = pointerPath(e.instancePath);
    if (e.keyword === 'additionalProperties') path.push((e.params as { additionalProperty: string }).additionalProperty);
    out.push({ file, line: lineAt(loc, path), message: msg, hint: 'see the Compose file reference: https://docs.docker.com/reference/compose-file/' });
  }
  return out;
}

export const CP002: Rule = {
  id: 'CP002',
  title: 'every installed compose client (docker compose, docker-compose) accepts the compose files (config -q)',
  severity: 'error',
  async check(ctx) {
    if (!ctx.external) return { skipped: '--no-external' };
    const file = composeFile(ctx);
    if (!file) return { skipped: 'no compose file (reported by CP001)' };
    const clients = await probeComposeAll(ctx.run);
    if (!clients.length) return { skipped: 'neither `docker compose` nor `docker-compose` is installed' };
    const out = [];
    // Every installed client (the file must work with Compose v2 and Debian's 1.29); the main
    // file alone, then with each override (as `up` combines them).
    for (const compose of clients) {
      const [bin, ...pre] = compose.command!;
      for (const files of [[file], ...overrideFiles(ctx, file).map((o) => [file, o])]) {
        const r = await ctx.run(bin!, [...pre, ...files.flatMap((f) => ['-f', join(ctx.root, f)]), 'config', '-q'], { cwd: join(ctx.root, 'docker'), timeoutMs: 60_000 });
        if (r.exitCode === 0) continue;
        const text = (r.stderr || r.stdout).trim();
        const blamed = files[files.length - 1]!;
        const loc = locate(ctx.read(blamed)!);
        // Compose names the offending key path ("services.comfyui.ports …") or the service; use it for the line.
        const m = /\b(services(?:\.[A-Za-z0-9_-]+)+)/.exec(text);
        const svc = /service "([^"]+)"/.exec(text);
        const path = m ? m[1]!.split('.').map((x) => (/^\d+$/.test(x) ? Number(x) : x)) : svc ? ['services', svc[1]!] : null;
        out.push({
          file: blamed,
          line: path ? lineAt(loc, path) : 1,
          message: `${compose.command!.join(' ')} ${compose.version} ${files.map((f) => `-f ${f.slice(7)}`).join(' ')} config -q: ${text.split('\n').filter(Boolean).slice(0, 3).join(' | ') || `exit ${r.exitCode}`}`,
          hint: 'fix what compose reports; run the same command to see it in full',
        });
      }
    }
    return out;
  },
};
