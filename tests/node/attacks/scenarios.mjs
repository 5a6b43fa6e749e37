// Attacks on a running iii-stream server, each measured from outside: the server's resident
// memory (/proc/<pid>/status), its /metrics, close codes, and the call latency of a healthy worker
// that keeps calling throughout. Used by attacks.test.mjs (CI-sized, with assertions) and by
// measure.mjs (full-sized, printing one JSON line per attack, for any binary).
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { delay, metric } from '../lib/server.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));

/** The server's resident memory in bytes. */
export function rss(server) {
  const status = readFileSync(`/proc/${server.pid}/status`, 'utf8');
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return kb * 1024;
}

export const MB = 1024 * 1024;

/** Opens a WebSocket; resolves once open. */
export function open(url, options = {}) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, options);
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode })));
  });
}

/** Resolves with the close code once `ws` closes (or null after `ms`). */
export function closed(ws, ms = 60_000) {
  return new Promise((resolve) => {
    if (ws.readyState === WebSocket.CLOSED) return resolve(ws._closeCode ?? null);
    const timer = setTimeout(() => resolve(null), ms);
    ws.once('close', (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
}

/**
 * A lean pipelining engine client: `call` sends an invokefunction and resolves with its result
 * message; nothing else is kept. `invoke` sends without waiting (the reply is counted only).
 */
export class Caller {
  static async connect(server) {
    return new Caller(await open(server.engineUrl));
  }

  constructor(ws) {
    this.ws = ws;
    this.pending = new Map();
    this.replies = 0;
    this.onCall = null;
    ws.on('message', (data) => {
      const text = data.toString();
      if (text.startsWith('{"type":"invokefunction"')) {
        this.onCall?.(JSON.parse(text));
        return;
      }
      this.replies += 1;
      const id = /"invocation_id":"([^"]+)"/.exec(text)?.[1];
      const waiter = id && this.pending.get(id);
      if (waiter) {
        this.pending.delete(id);
        waiter(JSON.parse(text));
      }
    });
    ws.on('error', () => {});
    ws.on('close', () => {
      for (const waiter of this.pending.values()) waiter({ error: { code: 'closed' } });
      this.pending.clear();
    });
  }

  message(function_id, data) {
    const invocation_id = randomUUID();
    return { invocation_id, text: JSON.stringify({ type: 'invokefunction', invocation_id, function_id, data }) };
  }

  call(function_id, data) {
    const { invocation_id, text } = this.message(function_id, data);
    return new Promise((resolve) => {
      this.pending.set(invocation_id, resolve);
      this.ws.send(text);
    });
  }

  invoke(function_id, data) {
    this.ws.send(this.message(function_id, data).text);
  }

  send(message) {
    this.ws.send(JSON.stringify(message));
  }

  close() {
    this.ws.terminate();
  }
}

/** Runs `calls` (a function returning a promise) with at most `window` in flight. */
export async function pipelined(count, window, call) {
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      await call(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(window, count) }, worker));
}

/**
 * A healthy worker calling stream::set then stream::get back to back until stopped, in a child
 * process (healthy.mjs); its latencies are the measure of "nobody else notices".
 */
export async function healthy(server) {
  const child = spawn(process.execPath, [path.join(HERE, 'healthy.mjs'), server.engineUrl], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d) => (out += d));
  const exited = new Promise((resolve) => child.once('exit', resolve));
  while (!out.includes('READY')) {
    if (child.exitCode !== null) throw new Error('the healthy worker did not start');
    await delay(10);
  }
  return {
    async stop() {
      child.stdin.end();
      await exited;
      const line = out.split('\n').find((l) => l.startsWith('{'));
      return JSON.parse(line);
    },
  };
}

export const delayMs = delay;

export function percentile(values, p) {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(sorted.length * p) - 1)];
}

/** The healthy worker's figures with nothing else going on, over `ms`. */
export async function unloaded(server, ms = 1500) {
  const h = await healthy(server);
  await delay(ms);
  return h.stop();
}

/** Waits until `rss(server)` settles (two readings 500 ms apart within 1 MB), at most `ms`. */
export async function settledRss(server, ms = 10_000) {
  const deadline = Date.now() + ms;
  let last = rss(server);
  while (Date.now() < deadline) {
    await delay(500);
    const now = rss(server);
    if (Math.abs(now - last) < MB) return now;
    last = now;
  }
  return last;
}

/** Runs `attack` while a healthy worker calls; returns the attack's own figures plus memory and latency. */
export async function measured(server, attack, { settleMs = 10_000, after } = {}) {
  const before = await settledRss(server, 3000);
  let peak = before;
  const sampler = setInterval(() => {
    try {
      peak = Math.max(peak, rss(server));
    } catch {
      /* exited */
    }
  }, 100);
  const h = await healthy(server);
  let figures;
  try {
    figures = await attack();
  } finally {
    clearInterval(sampler);
  }
  const latency = await h.stop();
  if (after) await after();
  const end = await settledRss(server, settleMs);
  return { ...figures, rss_before_mb: before / MB, rss_peak_mb: peak / MB, rss_after_mb: end / MB, healthy: latency };
}

// ---------------------------------------------------------------------------------------------
// The attacks
// ---------------------------------------------------------------------------------------------

/**
 * One subscriber connection joins and leaves `cycles` fresh group names; with `writes`, a worker
 * sets one item in each group while it is joined and deletes it before the leave.
 */
export async function joinLeave(server, { cycles, writes = false, window = 64 }) {
  const ws = await open(server.streamUrl);
  const writer = writes ? await Caller.connect(server) : null;
  const waiting = new Map();
  let refused = 0;
  ws.on('message', (data) => {
    const frame = JSON.parse(data.toString());
    if (frame.event?.type === 'unauthorized') refused += 1;
    const done = waiting.get(frame.subscriptionId);
    if (done && (frame.event?.type === 'sync' || frame.event?.type === 'unauthorized')) {
      waiting.delete(frame.subscriptionId);
      done();
    }
  });
  const token = randomUUID().slice(0, 8);
  await pipelined(cycles, window, async (i) => {
    const id = `s${i}`;
    const group = `fresh-${token}-${i}`;
    const synced = new Promise((resolve) => waiting.set(id, resolve));
    ws.send(JSON.stringify({ type: 'join', data: { subscriptionId: id, streamName: 'attack', groupId: group } }));
    await synced;
    if (writer) {
      await writer.call('stream::set', { stream_name: 'attack', group_id: group, item_id: 'i', data: { i } });
      await writer.call('stream::delete', { stream_name: 'attack', group_id: group, item_id: 'i' });
    }
    ws.send(JSON.stringify({ type: 'leave', data: { subscriptionId: id, streamName: 'attack', groupId: group } }));
  });
  ws.terminate();
  writer?.close();
  return { cycles, refused };
}

/** `stream::set` then `stream::delete` in `groups` fresh groups (or `stream::send` to each). */
export async function freshGroups(server, { groups, op = 'set-delete', window = 256 }) {
  const caller = await Caller.connect(server);
  const token = randomUUID().slice(0, 8);
  let errors = 0;
  await pipelined(groups, window, async (i) => {
    const base = { stream_name: 'attack', group_id: `fresh-${token}-${i}` };
    const replies =
      op === 'send'
        ? [await caller.call('stream::send', { ...base, type: 't', data: { i } })]
        : [
            await caller.call('stream::set', { ...base, item_id: 'i', data: { i } }),
            await caller.call('stream::delete', { ...base, item_id: 'i' }),
          ];
    errors += replies.filter((r) => r.error).length;
  });
  caller.close();
  return { groups, errors };
}

/**
 * A worker that sends `calls` `stream::set` calls and never reads its socket. Returns whether
 * the server closed it (seen once reading resumes) and how long the sends took to be taken.
 */
export async function nonReading(server, { calls }) {
  const ws = await open(server.engineUrl);
  ws._socket.pause();
  const data = { stream_name: 'attack', group_id: 'unread', item_id: 'i', data: { v: 'x'.repeat(64) } };
  for (let i = 0; i < calls; i++) {
    ws.send(JSON.stringify({ type: 'invokefunction', invocation_id: randomUUID(), function_id: 'stream::set', data }));
    if (i % 10_000 === 0) await delay(0);
  }
  // Give the server time to take what it will, then look.
  const deadline = Date.now() + 30_000;
  let closedByServer = false;
  while (Date.now() < deadline) {
    await delay(500);
    if ((await metric(server, 'iii_stream_limit_refusals_total{limit="worker_outbound"}')) > 0) {
      closedByServer = true;
      break;
    }
  }
  const unsent = ws.bufferedAmount;
  const code = (() => {
    ws._socket.resume();
    return closed(ws, 5000);
  })();
  const closeCode = await code;
  ws.terminate();
  return { calls, closedByServer, closeCode, unsentBytesAtTheEnd: unsent };
}

/**
 * A worker that sends `calls` `stream::set` calls as fast as it can, without waiting for any
 * reply (but reading them), then leaves.
 */
export async function flood(server, { calls }) {
  const caller = await Caller.connect(server);
  const replies = [];
  for (let i = 0; i < calls; i++) {
    replies.push(caller.call('stream::set', { stream_name: 'attack', group_id: 'flood', item_id: `i${i % 100}`, data: { i } }));
    if (i % 10_000 === 0) await delay(0);
  }
  const errors = (await Promise.all(replies)).filter((r) => r.error).length;
  caller.close();
  return { calls, errors };
}

/**
 * `calls` calls to a worker function that never answers, sent without waiting; then both the
 * caller and the callee go away.
 */
export async function hungFunction(server, { calls }) {
  const callee = await Caller.connect(server);
  const fn = `attack::never-${randomUUID().slice(0, 8)}`;
  callee.send({ type: 'registerfunction', id: fn });
  callee.onCall = () => {};
  await callee.call('stream::list_groups', { stream_name: 'barrier' });
  const caller = await Caller.connect(server);
  for (let i = 0; i < calls; i++) {
    caller.invoke(fn, { i });
    if (i % 10_000 === 0) await delay(0);
  }
  await delay(2000);
  const pending = await metric(server, 'iii_stream_pending_invocations');
  const peak = rss(server);
  caller.close();
  callee.close();
  await delay(500);
  return { calls, pending_while_hung: pending, rss_while_hung_mb: peak / MB, pending_after: await metric(server, 'iii_stream_pending_invocations') };
}

/**
 * A worker bound to `stream:join` that never answers; `joins` joins over several connections,
 * each ending at `timeouts.join_ms`. Then the worker disconnects.
 */
export async function hungJoin(server, { joins, connections = 20 }) {
  const gate = await Caller.connect(server);
  const fn = `attack::gate-${randomUUID().slice(0, 8)}`;
  gate.send({ type: 'registerfunction', id: fn });
  gate.send({ type: 'registertrigger', id: randomUUID(), trigger_type: 'stream:join', function_id: fn, config: { stream_name: 'gated' } });
  gate.onCall = () => {};
  await gate.call('stream::list_groups', { stream_name: 'barrier' });
  const sockets = await Promise.all(Array.from({ length: connections }, () => open(server.streamUrl)));
  const outcomes = { admitted: 0, refused: 0 };
  const answered = new Map();
  for (const ws of sockets) {
    ws.on('message', (data) => {
      const frame = JSON.parse(data.toString());
      const done = answered.get(frame.subscriptionId);
      if (!done) return;
      if (frame.event?.type === 'sync') outcomes.admitted += 1;
      else if (frame.event?.type === 'unauthorized') outcomes.refused += 1;
      else return;
      answered.delete(frame.subscriptionId);
      done();
    });
  }
  const started = performance.now();
  let pendingWhileGated = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      pendingWhileGated = Math.max(pendingWhileGated, await metric(server, 'iii_stream_pending_invocations'));
      await delay(50);
    }
  })();
  await pipelined(joins, connections * 20, async (i) => {
    const ws = sockets[i % connections];
    const id = `j${i}`;
    const done = new Promise((resolve) => answered.set(id, resolve));
    ws.send(JSON.stringify({ type: 'join', data: { subscriptionId: id, streamName: 'gated', groupId: `g${i % 10}` } }));
    await done;
    ws.send(JSON.stringify({ type: 'leave', data: { subscriptionId: id, streamName: 'gated', groupId: `g${i % 10}` } }));
  });
  const took = performance.now() - started;
  sampling = false;
  await sampler;
  for (const ws of sockets) ws.terminate();
  // Joins abandoned while their handler runs: each socket closes right after its join, the gate
  // stays connected.
  await pipelined(joins, 50, async (i) => {
    const ws = await open(server.streamUrl);
    ws.send(JSON.stringify({ type: 'join', data: { subscriptionId: `a${i}`, streamName: 'gated', groupId: 'g' } }));
    await delay(20);
    ws.terminate();
  });
  await delay(1000);
  const pendingAfterAbandon = await metric(server, 'iii_stream_pending_invocations');
  const rssAfterAbandon = rss(server);
  gate.close();
  await delay(1000);
  return {
    joins,
    ...outcomes,
    seconds: took / 1000,
    pending_while_gated: pendingWhileGated,
    pending_after_abandoned_joins: pendingAfterAbandon,
    rss_after_abandoned_joins_mb: rssAfterAbandon / MB,
    pending_after: await metric(server, 'iii_stream_pending_invocations'),
  };
}

/** `count` worker connections that do nothing; the server's memory per connection. */
export async function idleWorkers(server, { count }) {
  const before = await settledRss(server, 3000);
  const sockets = [];
  for (let i = 0; i < count; i += 100) {
    sockets.push(...(await Promise.all(Array.from({ length: Math.min(100, count - i) }, () => open(server.engineUrl)))));
  }
  const during = await settledRss(server, 5000);
  const open_ = await metric(server, 'iii_stream_worker_connections');
  for (const ws of sockets) ws.terminate();
  await delay(500);
  return { count, connections_seen: open_, bytes_per_connection: Math.round((during - before) / count) };
}

/**
 * `subscribers` sockets that join a group of `itemMb` 1-MiB items and never read. Returns how
 * many the server closed within `withinMs` and the memory it held meanwhile.
 */
export async function bigGroupNonReaders(server, { subscribers, items, withinMs }) {
  const writer = await Caller.connect(server);
  const group = `big-${randomUUID().slice(0, 8)}`;
  const blob = 'x'.repeat(MB);
  for (let i = 0; i < items; i++) {
    await writer.call('stream::set', { stream_name: 'attack', group_id: group, item_id: `i${i}`, data: { blob } });
  }
  const sockets = await Promise.all(Array.from({ length: subscribers }, () => open(server.streamUrl)));
  const codes = sockets.map((ws) => closed(ws, withinMs + 5000));
  for (const ws of sockets) {
    ws.send(JSON.stringify({ type: 'join', data: { subscriptionId: 's', streamName: 'attack', groupId: group } }));
    ws._socket.pause();
  }
  const started = Date.now();
  let peak = 0;
  const sampler = setInterval(() => (peak = Math.max(peak, rss(server))), 100);
  // Reading resumes only at the end, to see the close codes.
  await delay(withinMs);
  clearInterval(sampler);
  const slow = await metric(server, 'iii_stream_slow_consumer_disconnects_total');
  const heldAtTheEnd = rss(server);
  for (const ws of sockets) ws._socket.resume();
  const closes = await Promise.all(codes);
  for (const ws of sockets) ws.terminate();
  writer.close();
  return {
    subscribers,
    group_mb: items,
    slow_consumer_closes: slow,
    close_codes: [...new Set(closes)],
    rss_peak_mb: peak / MB,
    rss_at_the_end_mb: heldAtTheEnd / MB,
    seconds: (Date.now() - started) / 1000,
  };
}

/** A socket opened at `/stream/public/g` sends a `join` for another stream. */
export async function pathBound(server) {
  const ws = await open(`${server.streamUrl}/stream/public/g`);
  const frames = [];
  ws.on('message', (data) => frames.push(JSON.parse(data.toString())));
  ws.send(JSON.stringify({ type: 'join', data: { subscriptionId: 'other', streamName: 'private', groupId: 'g' } }));
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline && !frames.some((f) => f.subscriptionId === 'other')) await delay(20);
  ws.terminate();
  const answer = frames.find((f) => f.subscriptionId === 'other');
  return { answer: answer?.event?.type ?? null, reason: answer?.reason ?? null };
}

/** `count` connections that send half a request head and then nothing. */
export async function slowloris(server, { count, port = server.streamPort }) {
  const sockets = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise((resolve) => {
          const s = net.connect(port, '127.0.0.1', () => {
            s.write('GET / HTTP/1.1\r\nHost: x\r\n');
            resolve(s);
          });
          s.on('error', () => {});
        }),
    ),
  );
  const started = Date.now();
  const closedAt = await Promise.all(sockets.map((s) => new Promise((resolve) => s.once('close', () => resolve(Date.now() - started)))));
  return { count, closed: closedAt.length, max_seconds: Math.max(...closedAt) / 1000 };
}

/** Opens connections to `url` until `count`; returns how many were refused with HTTP 503. */
export async function overLimit(url, { count }) {
  const results = await Promise.allSettled(Array.from({ length: count }, () => open(url)));
  const sockets = results.filter((r) => r.status === 'fulfilled').map((r) => r.value);
  const refused = results.filter((r) => r.status === 'rejected' && r.reason.status === 503).length;
  return { attempted: count, opened: sockets.length, refused_503: refused, sockets };
}

/** Garbage on both ports: random bytes, broken JSON, wrong types, huge names. */
export async function garbage(server, { messages }) {
  const engine = await open(server.engineUrl);
  const stream = await open(server.streamUrl);
  for (const ws of [engine, stream]) ws.on('error', () => {});
  const samples = [
    () => Buffer.from(Array.from({ length: 1 + Math.floor(Math.random() * 200) }, () => Math.floor(Math.random() * 256))),
    () => '{"type":"join","data":',
    () => JSON.stringify({ type: 'join', data: { subscriptionId: 5, streamName: [], groupId: {} } }),
    () => JSON.stringify({ type: 'invokefunction', invocation_id: 'x', function_id: 'stream::set', data: { stream_name: 'a'.repeat(5000), group_id: 'g', item_id: 'i', data: 1 } }),
    () => JSON.stringify({ type: 'invokefunction', invocation_id: 'x', function_id: 'stream::update', data: { stream_name: 's', group_id: 'g', item_id: 'i', ops: [{ type: 'increment', path: 'a.b.c', by: 1.5 }] } }),
    () => JSON.stringify({ type: 'registertrigger', id: 't', trigger_type: 'stream', function_id: '', config: 7 }),
    () => JSON.stringify({ type: 'invocationresult', invocation_id: randomUUID(), result: 1 }),
    () => '\u0000\u0001{}',
  ];
  for (let i = 0; i < messages; i++) {
    const make = samples[i % samples.length];
    for (const ws of [engine, stream]) if (ws.readyState === WebSocket.OPEN) ws.send(make());
    if (i % 500 === 0) await delay(1);
  }
  await delay(500);
  const alive = { engine: engine.readyState === WebSocket.OPEN, stream: stream.readyState === WebSocket.OPEN };
  engine.terminate();
  stream.terminate();
  return { messages, ...alive };
}
