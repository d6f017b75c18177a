/**
 * The one rule that decides the model variant, used by every command (models check/download,
 * doctor, run's plan, build), by the worker and the local API (the default of a job that names
 * no `variant`) and so by the workflow filler:
 *
 *   1. the CLI flag (`--variant`), when given;
 *   2. else `$STEADYDANCER_VARIANT`, when set and not empty;
 *   3. else what the models folder holds, verified (every core file of the variant recorded in
 *      DIR/.steadydancer-verified.json with the size and mtime it still has) — the first such
 *      variant in the manifest's fallbackOrder, then the others in manifest order;
 *   4. else the manifest's defaultVariant.
 *
 * For a run (`forRun`: what ComfyUI is asked to load) a requested variant (1 or 2) that is not
 * installed gives way to the first variant of its fallback chain that is: after `models
 * download` fell back from fp8 to fp16 the folder holds fp16, and a job must ask for fp16.
 */
import { resolve } from 'node:path';
import type { Context } from '../util/context.js';
import { defaultManifestPath, fallbackChain, getVariant, loadManifest, variantFiles, variantNames, type Manifest } from './manifest.js';
import { verifiedSync } from './verified-cache.js';
import { UsageError } from '../util/errors.js';

export type VariantSource = 'flag' | 'env' | 'installed' | 'manifest';

export interface VariantDecision {
  variant: string;
  source: VariantSource;
  /** In words, for logs and reports: why this variant. */
  reason: string;
}

export interface VariantRuleOptions {
  manifest: Manifest;
  /** The CLI flag's value (undefined = not given). */
  flag?: string;
  /** The flag's name in errors (default "--variant"). */
  flagName?: string;
  env: NodeJS.ProcessEnv;
  /** The models folder whose verified files are looked at (undefined = none known). */
  modelsDir?: string;
  /** Choose what to run: a requested variant that is not installed gives way to an installed fallback. */
  forRun?: boolean;
  /** Only these variants are candidates (e.g. the ones the job workflow can run). */
  among?: readonly string[];
}

/** The variant's files a run needs (diffusion model, text encoder, the workflow's files; no preset files). */
function coreFiles(m: Manifest, variant: string) {
  return variantFiles(m, variant, { presets: [] });
}

/** Variants whose every core file is in `modelsDir` and verified: fallbackOrder first, then manifest order. */
export function installedVariants(m: Manifest, modelsDir: string, among?: readonly string[]): string[] {
  const order = [...new Set([...m.fallbackOrder, ...variantNames(m)])].filter((v) => !among || among.includes(v));
  const rel = (f: { folder: string; filename: string }) => `${f.folder}/${f.filename}`; // the record's key, as models download writes it
  const ok = verifiedSync(
    modelsDir,
    order.flatMap((v) => coreFiles(m, v)).map((f) => ({ rel: rel(f), sha256: f.sha256, size: f.size })),
  );
  return order.filter((v) => coreFiles(m, v).every((f) => ok.has(rel(f))));
}

function checked(m: Manifest, name: string, what: string, among?: readonly string[]): string {
  try {
    getVariant(m, name);
  } catch {
    throw new UsageError(`${what}: unknown variant "${name}"`, `choose one of: ${(among ?? variantNames(m)).join(', ')}`);
  }
  if (among && !among.includes(name)) throw new UsageError(`${what}: variant "${name}" cannot be used here`, `choose one of: ${among.join(', ')}`);
  return name;
}

export function resolveVariant(o: VariantRuleOptions): VariantDecision {
  const m = o.manifest;
  let requested: { variant: string; source: VariantSource; reason: string } | undefined;
  let skipped = '';
  if (o.flag !== undefined && o.flag !== '') {
    const name = o.flagName ?? '--variant';
    requested = { variant: checked(m, o.flag, `${name} ${o.flag}`, o.among), source: 'flag', reason: `${name} ${o.flag}` };
  } else if (o.env.STEADYDANCER_VARIANT) {
    const v = checked(m, o.env.STEADYDANCER_VARIANT, `STEADYDANCER_VARIANT=${o.env.STEADYDANCER_VARIANT}`);
    // A variant of another workflow (an image baked with GGUF weights) says nothing about what
    // this one can run: the rule goes on with the folder and the default instead of failing.
    if (!o.among || o.among.includes(v)) requested = { variant: v, source: 'env', reason: `STEADYDANCER_VARIANT=${v}` };
    else skipped = `STEADYDANCER_VARIANT=${v} is not one of ${o.among.join(', ')}; `;
  }
  const installed = o.modelsDir ? installedVariants(m, o.modelsDir, o.among) : [];
  if (requested) {
    if (!o.forRun || !o.modelsDir || installed.includes(requested.variant)) return requested;
    const fb = fallbackChain(m, requested.variant)
      .slice(1)
      .find((v) => installed.includes(v));
    if (fb) return { variant: fb, source: 'installed', reason: `${requested.reason} is not installed in ${o.modelsDir}; its fallback ${fb} is (verified)` };
    return requested;
  }
  if (installed.length) return { variant: installed[0]!, source: 'installed', reason: `${skipped}the verified files in ${o.modelsDir}` };
  const def = m.defaultVariant;
  if (o.among && !o.among.includes(def)) {
    const first = o.among[0];
    if (!first) throw new UsageError('no variant can be used here', `the manifest's variants: ${variantNames(m).join(', ')}`);
    return { variant: first, source: 'manifest', reason: `${skipped}the first usable variant of the manifest (its default ${def} cannot be used here)` };
  }
  return { variant: def, source: 'manifest', reason: `${skipped}the manifest's default${o.modelsDir ? ` (no complete verified variant in ${o.modelsDir})` : ''}` };
}

/**
 * What `models download` / `models prefetch` work on: the manifest (--manifest, else the default),
 * the models folder (--dest, else $MODELS_DIR; a usage error without either) and the variant by the
 * rule above (--variant, $STEADYDANCER_VARIANT, what the folder holds verified, the default).
 */
export function modelsTarget(opts: { manifest?: string; dest?: string; variant?: string }, ctx: Context): { manifest: Manifest; dest: string; variant: string } {
  const manifest = loadManifest(opts.manifest ?? defaultManifestPath(ctx.env));
  const destRaw = opts.dest ?? ctx.env.MODELS_DIR;
  if (!destRaw) throw new UsageError('no destination: pass --dest DIR or set MODELS_DIR');
  const dest = resolve(ctx.cwd, destRaw);
  const { variant, reason } = resolveVariant({ manifest, flag: opts.variant, env: ctx.env, modelsDir: dest });
  ctx.logger.debug('variant %s: %s', variant, reason);
  return { manifest, dest, variant };
}
