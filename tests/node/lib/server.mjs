// Test harness for the iii-stream end-to-end suite.
//
// - startServer(): picks free ports, writes a temporary YAML config, spawns the real binary,
//   waits for GET /healthz, captures its output and guarantees it is killed when the test
//   process ends.
// - setupServer(): node:test hooks that start one server per suite/file and stop it afterwards.
// - waitFor()/assertNever(): polling with deadlines (no fixed sleeps for correctness).
// - RawClient: a raw engine-port (or stream-port) WebSocket client built on `ws`.
// - worker(): an iii-sdk@0.22.1 worker that is shut down after the test.
//
// Every file that imports this module gets a root-level afterEach hook that prints the
// server's output produced during a failing test.

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, after, before, beforeEach } from 'node:test';
import { fileURLToPath } from 'node:url';
import { randomUUID } from 'node:crypto';
import WebSocket from 'ws';
import { registerWorker } from 'iii-sdk';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const TESTS_DIR = path.resolve(HERE, '..');
export const REPO_ROOT = path.resolve(HERE, '..', '..', '..');

// The SDK prints a console.debug line per connection ("[iii] Worker registered with ID"),
// per reconnect attempt, etc. Keep the TAP output readable unless E2E_VERBOSE is set.
if (!process.env.E2E_VERBOSE) console.debug = () => {};

// ---------------------------------------------------------------------------------------------
// Binary and ports
// ---------------------------------------------------------------------------------------------

export function binaryPath() {
  return process.env.III_STREAM_BIN
    ? path.resolve(process.env.III_STREAM_BIN)
    : path.join(REPO_ROOT, 'target', 'debug', 'iii-stream');
}

function assertBinary(bin) {
  let ok = false;
  try {
    const st = statSync(bin);
    ok = st.isFile() && (st.mode & 0o111) !== 0;
  } catch {
    ok = false;
  }
  if (!ok) {
    const from = process.env.III_STREAM_BIN ? 'III_STREAM_BIN' : 'the default path';
    throw new Error(
      `iii-stream binary not found or not executable at ${bin} (from ${from}). ` +
        'Build it with `cargo build` in the repository root, or point III_STREAM_BIN at the binary.',
    );
  }
}

function portIsFree(port) {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/**
 * A TCP port that was free a moment ago on 127.0.0.1, chosen below Linux's ephemeral range
 * (32768–60999): ports from that range are also handed to outgoing connections as local ports,
 * so a server restarted on one could find it taken by some client socket.
 */
export async function freePort() {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = 20000 + Math.floor(Math.random() * 12000);
    if (await portIsFree(port)) return port;
  }
  throw new Error('no free port found in 20000-31999');
}

async function twoFreePorts() {
  const a = await freePort();
  let b = await freePort();
  while (b === a) b = await freePort();
  return [a, b];
}

// ---------------------------------------------------------------------------------------------
// Config
// ---------------------------------------------------------------------------------------------

function isPlainObject(v) {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/**
 * Deep merge: plain objects merge recursively; arrays and scalars replace; a value of
 * `undefined` deletes the key (so a test can remove a default such as `adapter`).
 */
export function deepMerge(base, over) {
  if (!isPlainObject(base) || !isPlainObject(over)) return over === undefined ? base : over;
  const out = { ...base };
  for (const [k, v] of Object.entries(over)) {
    if (v === undefined) delete out[k];
    else if (isPlainObject(v) && isPlainObject(out[k])) out[k] = deepMerge(out[k], v);
    else out[k] = v;
  }
  return out;
}

/** Minimal block-style YAML emitter; scalars are JSON-encoded (valid YAML). */
export function toYaml(value, indent = 0) {
  const pad = ' '.repeat(indent);
  const scalar = (v) => (v === null || v === undefined ? 'null' : JSON.stringify(v));
  if (Array.isArray(value)) {
    if (value.length === 0) return `${pad}[]\n`;
    return value
      .map((item) => {
        if (isPlainObject(item) && Object.keys(item).length > 0) {
          const inner = toYaml(item, indent + 2);
          return `${pad}- ${inner.slice(indent + 2)}`;
        }
        if (Array.isArray(item) && item.length > 0) return `${pad}-\n${toYaml(item, indent + 2)}`;
        return `${pad}- ${isPlainObject(item) ? '{}' : Array.isArray(item) ? '[]' : scalar(item)}\n`;
      })
      .join('');
  }
  if (isPlainObject(value)) {
    const keys = Object.keys(value);
    if (keys.length === 0) return `${pad}{}\n`;
    return keys
      .map((k) => {
        const v = value[k];
        const key = /^[A-Za-z_][A-Za-z0-9_]*$/.test(k) ? k : JSON.stringify(k);
        if (isPlainObject(v) && Object.keys(v).length > 0) return `${pad}${key}:\n${toYaml(v, indent + 2)}`;
        if (Array.isArray(v) && v.length > 0) return `${pad}${key}:\n${toYaml(v, indent + 2)}`;
        return `${pad}${key}: ${isPlainObject(v) ? '{}' : Array.isArray(v) ? '[]' : scalar(v)}\n`;
      })
      .join('');
  }
  return `${pad}${scalar(value)}\n`;
}

/**
 * The config object for the given ports and options.
 * opts.stream  — deep-merged into the iii-stream entry's config
 * opts.engine  — deep-merged into the iii-worker-manager entry's config
 * opts.workers — extra `workers` entries appended verbatim
 */
export function buildConfig({ enginePort, streamPort }, opts = {}) {
  const engineCfg = deepMerge({ host: '127.0.0.1', port: enginePort }, opts.engine ?? {});
  const streamCfg = deepMerge(
    {
      host: '127.0.0.1',
      port: streamPort,
      adapter: { name: 'kv', config: { store_method: 'in_memory' } },
    },
    opts.stream ?? {},
  );
  return {
    workers: [
      { name: 'iii-worker-manager', config: engineCfg },
      { name: 'iii-stream', config: streamCfg },
      ...(opts.workers ?? []),
    ],
  };
}

// ---------------------------------------------------------------------------------------------
// Process management
// ---------------------------------------------------------------------------------------------

const liveChildren = new Set();
const allServers = [];

function killAllChildren() {
  for (const child of liveChildren) {
    try {
      child.kill('SIGKILL');
    } catch {
      /* already gone */
    }
  }
  liveChildren.clear();
}
process.on('exit', killAllChildren);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(sig, () => {
    killAllChildren();
    process.exit(128 + (os.constants.signals[sig] ?? 1));
  });
}

/** Track a child process so it is SIGKILLed when the test process exits. */
export function trackChild(child) {
  liveChildren.add(child);
  child.once('exit', () => liveChildren.delete(child));
  return child;
}

const LOG_CAP = 4 * 1024 * 1024;

function appendCapped(buf, chunk) {
  const next = buf.text + chunk;
  if (next.length > LOG_CAP) {
    buf.dropped += next.length - LOG_CAP;
    buf.text = next.slice(next.length - LOG_CAP);
  } else buf.text = next;
}

/**
 * Start the real binary.
 *
 * opts.stream / opts.engine / opts.workers: see buildConfig.
 * opts.rawConfig: string or ({enginePort, streamPort}) => string; replaces the generated config
 *   text entirely (for config tests). A string may use {{enginePort}} and {{streamPort}}.
 * opts.ports: [enginePort, streamPort] to listen on instead of free ports (e.g. to restart a
 *   server on the ports of one that was stopped).
 * opts.env: extra environment variables for the server process.
 * opts.args: CLI arguments (default ['serve', '--config', <file>]); may use {{config}}.
 * opts.waitReady: wait for /healthz (default true). With false, returns right after spawn;
 *   use waitExit() for startup-failure tests.
 * opts.readyTimeoutMs: default 10000.
 */
export async function startServer(opts = {}) {
  const bin = binaryPath();
  assertBinary(bin);
  let lastErr;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      return await startOnce(bin, opts);
    } catch (err) {
      lastErr = err;
      if (!err.addrInUse) throw err;
    }
  }
  throw lastErr;
}

async function startOnce(bin, opts) {
  const [enginePort, streamPort] = opts.ports ?? (await twoFreePorts());
  const dir = mkdtempSync(path.join(os.tmpdir(), 'iii-stream-e2e-'));
  const configPath = path.join(dir, 'config.yaml');
  let configText;
  if (opts.rawConfig !== undefined) {
    const raw = typeof opts.rawConfig === 'function' ? opts.rawConfig({ enginePort, streamPort, dir }) : opts.rawConfig;
    configText = raw
      .replaceAll('{{enginePort}}', String(enginePort))
      .replaceAll('{{streamPort}}', String(streamPort))
      .replaceAll('{{dir}}', dir);
  } else {
    configText = `# generated by tests/node/lib/server.mjs\n${toYaml(buildConfig({ enginePort, streamPort }, opts))}`;
  }
  writeFileSync(configPath, configText);

  const args = (opts.args ?? ['serve', '--config', '{{config}}']).map((a) => a.replaceAll('{{config}}', configPath));
  const child = trackChild(
    spawn(bin, args, {
      cwd: opts.cwd ?? dir,
      env: { RUST_BACKTRACE: '1', ...process.env, ...(opts.env ?? {}) },
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );

  const out = { text: '', dropped: 0 };
  const err = { text: '', dropped: 0 };
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stdout.on('data', (c) => appendCapped(out, c));
  child.stderr.on('data', (c) => appendCapped(err, c));

  let exitInfo = null;
  const exited = new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      exitInfo = { code, signal };
      resolve(exitInfo);
    });
    child.once('error', (e) => {
      appendCapped(err, `\n[harness] spawn error: ${e.message}\n`);
      exitInfo = { code: null, signal: null, error: e };
      resolve(exitInfo);
    });
  });

  const server = {
    bin,
    enginePort,
    streamPort,
    engineUrl: `ws://127.0.0.1:${enginePort}`,
    streamUrl: `ws://127.0.0.1:${streamPort}`,
    httpUrl: `http://127.0.0.1:${streamPort}`,
    configPath,
    configText,
    dir,
    pid: child.pid,
    process: child,
    get exitInfo() {
      return exitInfo;
    },
    /** Everything the server wrote to stderr so far. */
    stderr: () => err.text,
    stdout: () => out.text,
    /** Length marker for logsSince(). */
    mark: () => err.dropped + err.text.length,
    logsSince: (m) => err.text.slice(Math.max(0, m - err.dropped)),
    kill(signal = 'SIGKILL') {
      if (!exitInfo) child.kill(signal);
    },
    /** Resolves with {code, signal} when the process exits; rejects after timeoutMs. */
    async waitExit({ timeoutMs = 15000 } = {}) {
      if (exitInfo) return exitInfo;
      let timer;
      const timeout = new Promise((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`iii-stream (pid ${child.pid}) did not exit within ${timeoutMs} ms`)),
          timeoutMs,
        );
      });
      try {
        return await Promise.race([exited, timeout]);
      } finally {
        clearTimeout(timer);
      }
    },
    /** SIGTERM, then SIGKILL if it has not exited within graceMs. */
    async stop({ graceMs = 8000 } = {}) {
      if (!exitInfo) {
        child.kill('SIGTERM');
        try {
          await server.waitExit({ timeoutMs: graceMs });
        } catch {
          process.stderr.write(`[harness] iii-stream pid ${child.pid} ignored SIGTERM for ${graceMs} ms; killing\n`);
          child.kill('SIGKILL');
          await exited;
        }
      }
      try {
        rmSync(dir, { recursive: true, force: true });
      } catch {
        /* ignore */
      }
      return exitInfo;
    },
  };
  allServers.push(server);

  if (opts.waitReady === false) return server;

  const deadline = Date.now() + (opts.readyTimeoutMs ?? 10000);
  while (true) {
    if (exitInfo) {
      const e = new Error(
        `iii-stream exited during startup (code ${exitInfo.code}, signal ${exitInfo.signal}).\n` +
          `config (${configPath}):\n${configText}\n--- stderr ---\n${err.text}\n--- stdout ---\n${out.text}`,
      );
      e.addrInUse = /address already in use|EADDRINUSE|os error 98/i.test(err.text);
      rmSync(dir, { recursive: true, force: true });
      throw e;
    }
    try {
      const res = await fetch(`${server.httpUrl}/healthz`, { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer().catch(() => {});
      if (res.status === 200) break;
    } catch {
      /* not listening yet */
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      await exited;
      rmSync(dir, { recursive: true, force: true });
      throw new Error(
        `iii-stream did not answer 200 on GET ${server.httpUrl}/healthz within ${opts.readyTimeoutMs ?? 10000} ms.\n` +
          `config (${configPath}):\n${configText}\n--- stderr ---\n${err.text}`,
      );
    }
    await delay(50);
  }
  return server;
}

/**
 * Register node:test hooks that start a server before the current suite (or file) and stop it
 * afterwards. Returns a holder whose `.server` is set once started.
 */
export function setupServer(opts = {}) {
  const holder = { server: null };
  before(async () => {
    holder.server = await startServer(opts);
  });
  after(async () => {
    await holder.server?.stop();
  });
  return holder;
}

// Print server output for failing tests.
const marks = new WeakMap();
beforeEach((t) => {
  marks.set(t, new Map(allServers.map((s) => [s, s.mark()])));
});
afterEach((t) => {
  if (t.passed !== false) return;
  const m = marks.get(t) ?? new Map();
  for (const s of allServers) {
    const since = m.has(s) ? m.get(s) : 0;
    const text = s.logsSince(since);
    // Servers that existed before the test and logged nothing during it are not shown.
    if (!text && m.has(s)) continue;
    const lines = text.split('\n');
    const shown = lines.length > 400 ? ['[... earlier lines omitted ...]', ...lines.slice(-400)] : lines;
    process.stderr.write(
      `\n----- iii-stream stderr during failed test "${t.name}" (pid ${s.pid}, engine ${s.enginePort}, stream ${s.streamPort}` +
        `${s.exitInfo ? `, exited ${JSON.stringify(s.exitInfo)}` : ''}) -----\n${shown.join('\n')}\n----- end -----\n`,
    );
  }
});

// ---------------------------------------------------------------------------------------------
// Polling helpers
// ---------------------------------------------------------------------------------------------

export function delay(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * Poll `predicate` (sync or async) until it returns a truthy value, which is returned.
 * Throws after timeoutMs with `message` (string or function giving a string).
 */
export async function waitFor(predicate, { timeoutMs = 5000, intervalMs = 10, message } = {}) {
  const deadline = Date.now() + timeoutMs;
  let lastErr;
  while (true) {
    try {
      const v = await predicate();
      if (v) return v;
      lastErr = undefined;
    } catch (e) {
      lastErr = e;
    }
    if (Date.now() >= deadline) {
      const msg = typeof message === 'function' ? message() : message;
      const err = new Error(`waitFor timed out after ${timeoutMs} ms${msg ? `: ${msg}` : ''}`);
      if (lastErr) err.cause = lastErr;
      throw err;
    }
    await delay(intervalMs);
  }
}

/**
 * Negative check: `predicate` must stay falsy for `forMs`. Used only after a positive sentinel
 * has been observed (so the window is a safety margin, not the synchronisation mechanism).
 */
export async function assertNever(predicate, { forMs = 300, intervalMs = 10, message = 'condition became true' } = {}) {
  const deadline = Date.now() + forMs;
  while (Date.now() < deadline) {
    if (await predicate()) throw new Error(typeof message === 'function' ? message() : message);
    await delay(intervalMs);
  }
  if (await predicate()) throw new Error(typeof message === 'function' ? message() : message);
}

/** One sample of the server's `GET /metrics` (the first series starting with `name`); 0 if absent. */
export async function metric(server, name) {
  const res = await fetch(`http://127.0.0.1:${server.streamPort}/metrics`);
  const text = await res.text();
  const line = text.split('\n').find((l) => l.startsWith(name));
  return line ? Number(line.split(' ').pop()) : 0;
}

/** A unique name for streams/groups/functions in this test run. */
let uniqueCounter = 0;
export function uid(prefix = 'e2e') {
  uniqueCounter += 1;
  return `${prefix}-${process.pid}-${uniqueCounter}-${randomUUID().slice(0, 8)}`;
}

// ---------------------------------------------------------------------------------------------
// Raw WebSocket client
// ---------------------------------------------------------------------------------------------

export class RawClient {
  constructor(ws) {
    this.ws = ws;
    this.textByMsg = new WeakMap();
    /** Parsed JSON messages in arrival order (binary messages are parsed too if they are JSON). */
    this.messages = [];
    /** Raw entries: {text, isBinary, data (parsed or undefined)} */
    this.raw = [];
    this.handlers = new Map();
    this.closeInfo = null;
    this.waiters = new Set();
    this.pongs = [];
    this.closed = new Promise((resolve) => {
      ws.on('close', (code, reason) => {
        this.closeInfo = { code, reason: reason.toString() };
        this.notify();
        resolve(this.closeInfo);
      });
    });
    ws.on('error', () => {
      /* surfaced through close */
    });
    ws.on('pong', (payload) => {
      this.pongs.push(Buffer.from(payload));
      this.notify();
    });
    ws.on('message', (data, isBinary) => {
      const text = Buffer.isBuffer(data) ? data.toString('utf8') : Buffer.concat(data).toString('utf8');
      let parsed;
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = undefined;
      }
      this.raw.push({ text, isBinary, data: parsed });
      if (parsed !== undefined) {
        this.messages.push(parsed);
        if (parsed !== null && typeof parsed === 'object') this.textByMsg.set(parsed, text);
        if (parsed && parsed.type === 'invokefunction' && this.handlers.has(parsed.function_id)) {
          this.answer(parsed);
        }
      }
      this.notify();
    });
  }

  /** Connect; resolves once open. `path` is appended to the URL (e.g. '/otel'). */
  static async connect(url, { path: p = '', protocols, headers, timeoutMs = 5000 } = {}) {
    const ws = new WebSocket(url + p, protocols, { headers, handshakeTimeout: timeoutMs });
    const client = new RawClient(ws);
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('unexpected-response', (_req, res) => {
        const e = new Error(`unexpected HTTP ${res.statusCode} on WebSocket upgrade to ${url}${p}`);
        e.statusCode = res.statusCode;
        reject(e);
      });
      ws.once('error', reject);
    });
    return client;
  }

  notify() {
    for (const w of this.waiters) w();
  }

  /** The original text of a parsed message. */
  textOf(msg) {
    return this.textByMsg.get(msg);
  }

  send(obj) {
    this.ws.send(JSON.stringify(obj));
  }

  sendText(text) {
    this.ws.send(text, { binary: false });
  }

  sendBinary(buf) {
    this.ws.send(Buffer.isBuffer(buf) ? buf : Buffer.from(buf), { binary: true });
  }

  /** Wait until a received message satisfies pred (messages already received count). */
  async waitMessage(pred, { timeoutMs = 5000, from = 0, what = 'a matching message' } = {}) {
    const find = () => this.messages.slice(from).find(pred);
    const hit = find();
    if (hit) return hit;
    return new Promise((resolve, reject) => {
      const check = () => {
        const m = find();
        if (m) {
          cleanup();
          resolve(m);
        } else if (this.closeInfo) {
          cleanup();
          reject(new Error(`connection closed (${JSON.stringify(this.closeInfo)}) while waiting for ${what}`));
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(
          new Error(
            `timed out after ${timeoutMs} ms waiting for ${what}; received: ${JSON.stringify(this.messages).slice(0, 2000)}`,
          ),
        );
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        this.waiters.delete(check);
      };
      this.waiters.add(check);
    });
  }

  /**
   * Send an invokefunction and wait for its invocationresult (returns the parsed message).
   * opts.omitData: send no `data` key. opts.action: action object. opts.extra: extra top-level keys.
   */
  async call(function_id, data, { action, omitData = false, extra = {}, timeoutMs = 5000, invocation_id } = {}) {
    const id = invocation_id ?? randomUUID();
    const msg = { type: 'invokefunction', invocation_id: id, function_id, ...extra };
    if (!omitData) msg.data = data;
    if (action !== undefined) msg.action = action;
    this.send(msg);
    return this.waitMessage((m) => m && m.type === 'invocationresult' && m.invocation_id === id, {
      timeoutMs,
      what: `invocationresult for ${function_id} (${id})`,
    });
  }

  /** Register a function answered by `handler(data, msg)`; the return value is sent as result
   * unless it is the symbol RawClient.NO_RESULT; a thrown error is sent as `error` (use
   * err.body to send an exact error body); RawClient.NEVER leaves the call unanswered. */
  serve(function_id, handler) {
    this.handlers.set(function_id, handler);
    this.send({ type: 'registerfunction', id: function_id });
  }

  async answer(msg) {
    const handler = this.handlers.get(msg.function_id);
    const reply = { type: 'invocationresult', invocation_id: msg.invocation_id, function_id: msg.function_id };
    try {
      const r = await handler(msg.data, msg);
      if (r === RawClient.NEVER) return;
      if (r !== RawClient.NO_RESULT) reply.result = r;
    } catch (e) {
      reply.error = e.body ?? { code: 'invocation_failed', message: String(e.message ?? e) };
    }
    if (this.ws.readyState === WebSocket.OPEN) this.send(reply);
  }

  registerTrigger({ id = randomUUID(), trigger_type = 'stream', function_id, config, metadata, omitConfig = false }) {
    const msg = { type: 'registertrigger', id, trigger_type, function_id };
    if (!omitConfig) msg.config = config;
    if (metadata !== undefined) msg.metadata = metadata;
    this.send(msg);
    return id;
  }

  unregisterTrigger(id, trigger_type = 'stream') {
    this.send({ type: 'unregistertrigger', id, trigger_type });
  }

  /** WebSocket Ping; resolves with the payload of the next Pong. */
  async ping(payload = Buffer.from('e2e'), { timeoutMs = 3000 } = {}) {
    const before = this.pongs.length;
    this.ws.ping(payload);
    await waitFor(() => this.pongs.length > before || this.closeInfo, { timeoutMs, message: 'no pong received' });
    if (this.pongs.length <= before) throw new Error(`connection closed while waiting for pong: ${JSON.stringify(this.closeInfo)}`);
    return this.pongs[before];
  }

  async close() {
    if (this.ws.readyState === WebSocket.CLOSED) return;
    this.ws.close();
    const t = setTimeout(() => this.ws.terminate(), 2000);
    await this.closed;
    clearTimeout(t);
  }
}
RawClient.NO_RESULT = Symbol('no result');
RawClient.NEVER = Symbol('never answer');

/** Connect a raw client to the engine port and close it after the test. */
export async function rawEngine(t, server, opts = {}) {
  const c = await RawClient.connect(server.engineUrl, opts);
  if (t) t.after(() => c.close());
  return c;
}

// ---------------------------------------------------------------------------------------------
// iii-sdk workers
// ---------------------------------------------------------------------------------------------

let workerCounter = 0;
const liveWorkers = new Set();

// Safety net: a worker left connected keeps reconnecting after the server stops and would keep
// this test process alive forever, so every worker still open at the end of the file is shut down.
after(async () => {
  for (const w of [...liveWorkers]) await w.shutdown().catch(() => {});
});

/**
 * An iii-sdk@0.22.1 worker connected to the server's engine port, shut down after the test
 * (when `t` is given; pass null to shut it down yourself — the harness still shuts down any worker
 * left open when the file's tests end). OpenTelemetry is off unless opts.otel is true; metrics reporting is off.
 * opts.invocationTimeoutMs: the SDK's local call timeout (default 10 s, so a missing answer
 * fails a test with code TIMEOUT instead of hanging for the SDK default of 30 s).
 */
export function worker(t, server, opts = {}) {
  workerCounter += 1;
  const w = registerWorker(server.engineUrl, {
    workerName: opts.name ?? `e2e-worker-${process.pid}-${workerCounter}`,
    enableMetricsReporting: opts.otel ? true : false,
    invocationTimeoutMs: opts.invocationTimeoutMs ?? 10000,
    otel: { enabled: !!opts.otel, ...(opts.otelConfig ?? {}) },
    reconnectionConfig: opts.reconnectionConfig,
  });
  const shutdown = w.shutdown;
  w.shutdown = async () => {
    liveWorkers.delete(w);
    await shutdown();
  };
  liveWorkers.add(w);
  if (t) t.after(() => w.shutdown());
  return w;
}

/**
 * Round-trip on one worker connection: registrations are unacknowledged, but messages of one
 * connection are processed in order (worker-protocol.md §5.3), so once a call made after them
 * is answered they are in effect (clients.md §3). Does not write anything.
 */
export async function roundTrip(w) {
  await w.trigger({ function_id: 'stream::list_groups', payload: { stream_name: '__e2e_roundtrip__' } });
}

/** Call a function through an SDK worker. */
export function call(w, function_id, payload, extra = {}) {
  return w.trigger({ function_id, payload, ...extra });
}

/**
 * Call and expect a rejection; returns {code, message, error}. `message` is the wire message
 * (the SDK's InvocationError prefixes it with "<code>: ").
 */
export async function callErr(w, function_id, payload, extra = {}) {
  let result;
  try {
    result = await w.trigger({ function_id, payload, ...extra });
  } catch (error) {
    const code = error?.code;
    let message = error?.message ?? '';
    if (typeof code === 'string' && message.startsWith(`${code}: `)) message = message.slice(code.length + 2);
    return { code, message, error };
  }
  throw new Error(`expected ${function_id} to fail, but it resolved with ${JSON.stringify(result)}`);
}

/** Sort by UTF-8 byte order (the order the spec uses for listings). */
export function byteSort(arr) {
  return [...arr].sort((a, b) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8')));
}

/** A test-local recorder: a handler that records its inputs (and metadata). */
export function recorder(result) {
  const calls = [];
  const fn = async (input, metadata) => {
    calls.push({ input, metadata });
    return typeof result === 'function' ? result(input, metadata) : result;
  };
  fn.calls = calls;
  fn.inputs = () => calls.map((c) => c.input);
  return fn;
}

