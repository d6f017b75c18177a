/**
 * What the local Docker installation offers: engine reachable and its version, BuildKit, the
 * Docker root directory, Compose v2 or v1, and whether an image is present. Each probe takes
 * an injectable Runner (recorded outputs in tests).
 */
import { compareVersions } from '../system/gpu.js';
import { firstLine, type Runner } from '../system/exec.js';

export interface EngineProbe {
  clientInstalled: boolean;
  clientVersion: string | null;
  reachable: boolean;
  serverVersion: string | null;
  serverApiVersion: string | null;
  /** Why the engine is not usable (when reachable is false). */
  reason?: string;
}

interface VersionJson {
  Client?: { Version?: string; ApiVersion?: string } | null;
  Server?: { Version?: string; ApiVersion?: string } | null;
}

export async function probeEngine(run: Runner): Promise<EngineProbe> {
  const r = await run('docker', ['version', '--format', '{{json .}}']);
  if (r.notFound) {
    return { clientInstalled: false, clientVersion: null, reachable: false, serverVersion: null, serverApiVersion: null, reason: 'the docker client is not installed' };
  }
  let v: VersionJson = {};
  const jsonLine = r.stdout.split('\n').find((l) => l.trim().startsWith('{'));
  if (jsonLine) {
    try {
      v = JSON.parse(jsonLine) as VersionJson;
    } catch {
      v = {};
    }
  }
  const clientVersion = v.Client?.Version ?? null;
  const server = v.Server ?? null;
  if (r.exitCode !== 0 || !server?.Version) {
    const why = firstLine(r.stderr) || firstLine(r.stdout.replace(jsonLine ?? '', '')) || `docker version exited ${r.exitCode}`;
    return { clientInstalled: true, clientVersion, reachable: false, serverVersion: null, serverApiVersion: null, reason: why };
  }
  return { clientInstalled: true, clientVersion, reachable: true, serverVersion: server.Version, serverApiVersion: server.ApiVersion ?? null };
}

export interface InfoProbe {
  dockerRootDir: string | null;
  storageDriver: string | null;
  /** NVIDIA container runtime registered with the engine. */
  nvidiaRuntime: boolean;
  /** buildx client plugin present (BuildKit is then the default builder). */
  buildx: boolean;
  reason?: string;
}

interface InfoJson {
  DockerRootDir?: string;
  Driver?: string;
  Runtimes?: Record<string, unknown>;
  ClientInfo?: { Plugins?: Array<{ Name?: string }> };
  ServerErrors?: string[];
}

export async function probeInfo(run: Runner): Promise<InfoProbe> {
  const r = await run('docker', ['info', '--format', '{{json .}}']);
  let info: InfoJson = {};
  const jsonLine = r.stdout.split('\n').find((l) => l.trim().startsWith('{'));
  if (jsonLine) {
    try {
      info = JSON.parse(jsonLine) as InfoJson;
    } catch {
      info = {};
    }
  }
  let buildx = (info.ClientInfo?.Plugins ?? []).some((p) => p.Name === 'buildx');
  if (!buildx) {
    const b = await run('docker', ['buildx', 'version']);
    buildx = b.exitCode === 0 && /buildx/i.test(b.stdout);
  }
  const reason = info.ServerErrors?.length ? info.ServerErrors.join('; ') : r.exitCode !== 0 ? firstLine(r.stderr) || `docker info exited ${r.exitCode}` : undefined;
  return {
    dockerRootDir: info.DockerRootDir ?? null,
    storageDriver: info.Driver ?? null,
    nvidiaRuntime: Object.keys(info.Runtimes ?? {}).includes('nvidia'),
    buildx,
    ...(reason ? { reason } : {}),
  };
}

/** BuildKit needs engine API ≥ 1.39 (Docker 18.09). */
export function engineSupportsBuildKit(apiVersion: string | null): boolean {
  return apiVersion !== null && compareVersions(apiVersion, '1.39') >= 0;
}

export interface ComposeProbe {
  /** "v2" = the `docker compose` plugin, "v1" = the standalone docker-compose (1.x, or 2.x standalone). */
  kind: 'v2' | 'v1' | null;
  version: string | null;
  /** The argv prefix that runs compose: ["docker","compose"] or ["docker-compose"]. */
  command: string[] | null;
}

const SEMVER = /v?(\d+\.\d+\.\d+)/;

/** The Compose clients in the order they are preferred: the v2 plugin, then docker-compose v1. */
const COMPOSE_CLIENTS = [
  { kind: 'v2', bin: 'docker', args: ['compose', 'version'], command: ['docker', 'compose'] },
  { kind: 'v1', bin: 'docker-compose', args: ['version', '--short'], command: ['docker-compose'] },
] as const;

async function probeClient(run: Runner, c: (typeof COMPOSE_CLIENTS)[number]): Promise<ComposeProbe | undefined> {
  const r = await run(c.bin, [...c.args]);
  const m = r.exitCode === 0 ? SEMVER.exec(r.stdout) : null;
  return m ? { kind: c.kind, version: m[1]!, command: [...c.command] } : undefined;
}

export async function probeCompose(run: Runner): Promise<ComposeProbe> {
  for (const c of COMPOSE_CLIENTS) {
    const p = await probeClient(run, c);
    if (p) return p;
  }
  return { kind: null, version: null, command: null };
}

/** Every compose client installed (v2 plugin and standalone docker-compose), for checks that want both. */
export async function probeComposeAll(run: Runner): Promise<ComposeProbe[]> {
  const found: ComposeProbe[] = [];
  for (const c of COMPOSE_CLIENTS) {
    const p = await probeClient(run, c);
    if (p) found.push(p);
  }
  return found;
}

export async function imagePresent(run: Runner, image: string): Promise<boolean> {
  const r = await run('docker', ['image', 'inspect', '--format', '{{.Id}}', image]);
  return r.exitCode === 0;
}
