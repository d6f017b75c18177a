/**
 * A parsed Dockerfile for the lint rules and doctor: dockerfile-ast (the parser behind
 * dockerfile-utils) gives instructions with ranges; this adds the facts the rules need
 * (build args with their defaults, runtime ENV, FROM images resolved through ARG defaults).
 */
import { DockerfileParser, type Dockerfile, type Instruction } from 'dockerfile-ast';

export interface ArgDecl {
  name: string;
  /** Default value (unquoted), or null when declared without one. */
  value: string | null;
  /** 1-based line. */
  line: number;
  /** Declared before the first FROM (a global arg, usable in FROM lines). */
  global: boolean;
}

export interface EnvDecl {
  name: string;
  value: string | null;
  line: number;
  /** Index of the build stage (0-based) the ENV belongs to. */
  stage: number;
}

export interface FromDecl {
  line: number;
  /** The image as written (may contain ${VAR}). */
  raw: string;
  /** With global ARG defaults substituted; null when a variable has no default. */
  resolved: string | null;
  stageName: string | null;
  stage: number;
}

export interface ParsedDockerfile {
  text: string;
  ast: Dockerfile;
  args: ArgDecl[];
  envs: EnvDecl[];
  froms: FromDecl[];
  /** Index of the last stage (the image that is built by default). */
  finalStage: number;
}

const line1 = (i: Instruction) => i.getRange().start.line + 1;

/** Substitute ${VAR}, ${VAR:-default} and $VAR from `vars`; null when one cannot be resolved. */
export function substitute(text: string, vars: Map<string, string | null>): string | null {
  let failed = false;
  const out = text.replace(
    /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?([-+])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)/g,
    (_m, n1: string | undefined, op: string | undefined, word: string | undefined, n2: string | undefined) => {
      const name = (n1 ?? n2)!;
      const v = vars.get(name);
      const set = v !== undefined && v !== null && v !== '';
      if (op === '-') return set ? v : (word ?? '');
      if (op === '+') return set ? (word ?? '') : '';
      if (!set) {
        failed = true;
        return '';
      }
      return v;
    },
  );
  return failed ? null : out;
}

export function parseDockerfile(text: string): ParsedDockerfile {
  const ast = DockerfileParser.parse(text);
  const args: ArgDecl[] = [];
  const envs: EnvDecl[] = [];
  const froms: FromDecl[] = [];
  const globals = new Map<string, string | null>();
  let stage = -1;
  for (const ins of ast.getInstructions()) {
    const kw = ins.getKeyword();
    if (kw === 'FROM') {
      stage++;
      const from = ins as unknown as import('dockerfile-ast').From;
      const raw = from.getImage() ?? '';
      froms.push({ line: line1(ins), raw, resolved: substitute(raw, globals), stageName: from.getBuildStage(), stage });
    } else if (kw === 'ARG') {
      const arg = ins as unknown as import('dockerfile-ast').Arg;
      const p = arg.getProperty();
      if (!p) continue;
      const value = p.getAssignmentOperator() === null ? null : (p.getUnescapedValue() ?? '');
      const decl: ArgDecl = { name: p.getName(), value, line: line1(ins), global: stage < 0 };
      args.push(decl);
      if (stage < 0) globals.set(decl.name, value);
    } else if (kw === 'ENV') {
      const env = ins as unknown as import('dockerfile-ast').Env;
      for (const p of env.getProperties()) envs.push({ name: p.getName(), value: p.getUnescapedValue(), line: line1(ins), stage: Math.max(stage, 0) });
    }
  }
  return { text, ast, args, envs, froms, finalStage: Math.max(stage, 0) };
}

/** Default of a global ARG (e.g. BASE_IMAGE), or null. */
export function globalArgDefault(df: ParsedDockerfile, name: string): string | null {
  return df.args.find((a) => a.global && a.name === name)?.value ?? null;
}
