/**
 * Error paths a real ComfyUI cannot be made to produce on demand in a CPU test: a job reported as
 * interrupted, and the WebSocket dropping mid-job (ComfyUI crashed). A tiny HTTP + WS server on
 * loopback speaks just enough of ComfyUI's protocol.
 */
import { createServer, type Server } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer, type WebSocket } from 'ws';
import { ComfyClient, ComfyUnreachableError, ExecutionInterruptedError } from '../../../src/comfy/client.js';

interface Fake {
  url: string;
  close(): Promise<void>;
  interrupts: unknown[];
  deletes: unknown[];
}

async function fakeComfy(onPrompt: (ws: WebSocket, promptId: string) => void): Promise<Fake> {
  const sockets = new Set<WebSocket>();
  const interrupts: unknown[] = [];
  const deletes: unknown[] = [];
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      if (req.url === '/prompt' && req.method === 'POST') {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ prompt_id: 'p1', number: 1, node_errors: {} }));
        for (const ws of sockets) onPrompt(ws, 'p1');
      } else if (req.url === '/interrupt') {
        interrupts.push(JSON.parse(body || '{}'));
        res.end();
      } else if (req.url === '/queue' && req.method === 'POST') {
        deletes.push(JSON.parse(body || '{}'));
        res.end();
      } else {
        res.statusCode = 404;
        res.end('not here');
      }
    });
  });
  const wss = new WebSocketServer({ server, path: '/ws' });
  wss.on('connection', (ws) => {
    sockets.add(ws);
    ws.send(JSON.stringify({ type: 'status', data: { status: { exec_info: { queue_remaining: 0 } }, sid: 'x' } }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}`,
    interrupts,
    deletes,
    close: async () => {
      for (const ws of sockets) ws.terminate();
      wss.close();
      await new Promise((r) => server.close(r));
    },
  };
}

let fake: Fake | undefined;
afterEach(async () => fake?.close());

describe('ComfyClient error paths (protocol server on loopback)', () => {
  it('execution_interrupted → ExecutionInterruptedError; progress events reach the caller', async () => {
    fake = await fakeComfy((ws, pid) => {
      ws.send(JSON.stringify({ type: 'execution_start', data: { prompt_id: pid } }));
      ws.send(JSON.stringify({ type: 'progress', data: { value: 1, max: 4, prompt_id: pid, node: '20' } }));
      ws.send(Buffer.from([1, 2, 3]), { binary: true }); // a preview frame: ignored
      ws.send(JSON.stringify({ type: 'progress', data: { value: 1, max: 4, prompt_id: 'other', node: '20' } })); // another job
      ws.send(JSON.stringify({ type: 'execution_interrupted', data: { prompt_id: pid, node_id: '20', node_type: 'SamplerCustomAdvanced', executed: [] } }));
    });
    const seen: string[] = [];
    const err = await new ComfyClient({ url: fake.url }).run({}, { onEvent: (e) => seen.push(e.type === 'progress' ? `progress ${e.value}/${e.max}` : e.type) }).catch((e) => e);
    expect(err).toBeInstanceOf(ExecutionInterruptedError);
    expect((err as Error).message).toBe('ComfyUI job p1 was interrupted in node 20');
    expect(seen).toEqual(['execution_start', 'progress 1/4', 'execution_interrupted']);
  });

  it('the WebSocket drops mid-job (ComfyUI died) → ComfyUnreachableError', async () => {
    fake = await fakeComfy((ws, pid) => {
      ws.send(JSON.stringify({ type: 'executing', data: { node: '5', prompt_id: pid } }));
      setTimeout(() => ws.terminate(), 50);
    });
    const err = await new ComfyClient({ url: fake.url }).run({}).catch((e) => e);
    expect(err).toBeInstanceOf(ComfyUnreachableError);
    expect((err as Error).message).toMatch(/WebSocket closed .* before the job finished/);
  });

  it('aborting a running job interrupts it in ComfyUI and removes it from the queue', async () => {
    fake = await fakeComfy((ws, pid) => ws.send(JSON.stringify({ type: 'executing', data: { node: '5', prompt_id: pid } })));
    const ac = new AbortController();
    const p = new ComfyClient({ url: fake.url }).run({}, { signal: ac.signal, onEvent: (e) => e.type === 'executing' && ac.abort(new Error('cancelled by user')) });
    await expect(p).rejects.toThrow('cancelled by user');
    expect(fake.interrupts).toEqual([{ prompt_id: 'p1' }]);
    expect(fake.deletes).toEqual([{ delete: ['p1'] }]);
  });

  it('a non-JSON or unexpected answer is a ComfyHttpError with the status', async () => {
    fake = await fakeComfy(() => undefined);
    await expect(new ComfyClient({ url: fake.url }).systemStats()).rejects.toThrow(/answered 404 to \/system_stats: not here/);
  });
});
