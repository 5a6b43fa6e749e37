// Exact numbers (docs/values.md): every double an iii-sdk@0.22.1 worker stores comes back
// bit-identical through every path: set/get/list results, update results, the frames and syncs
// a raw subscriber receives, `stream` trigger payloads, a resume replay, a restart of the file
// store, and the Redis adapter.
//
// 10,000 random doubles (random bit patterns, so every exponent range) plus edge values, in 100
// items of 100 numbers. JavaScript parses and prints doubles exactly (shortest round trip), so
// any difference is the server's.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { RawClient, call, freePort, recorder, roundTrip, startServer, uid, waitFor, worker } from './lib/server.mjs';
import { cleanupRedis, onRedis } from './lib/redis.mjs';

const TOKEN = uid('numbers');
const ITEMS = 100;
const PER_ITEM = 100;

const EDGES = [
  0.1 + 0.2,
  0.37476023249627444,
  5e-324,
  -5e-324,
  2.2250738585072014e-308, // smallest normal
  2.225073858507201e-308, // largest subnormal
  Number.MAX_VALUE,
  -Number.MAX_VALUE,
  Number.EPSILON,
  Number.MAX_SAFE_INTEGER,
  2 ** 53 + 2,
  1e21,
  1e-7,
  123456789.12345679,
];

/** A finite double from 64 random bits. */
function randomDouble() {
  const view = new DataView(new ArrayBuffer(8));
  for (;;) {
    view.setUint32(0, (Math.random() * 2 ** 32) >>> 0);
    view.setUint32(4, (Math.random() * 2 ** 32) >>> 0);
    const x = view.getFloat64(0);
    if (Number.isFinite(x)) return x;
  }
}

function numbers() {
  const all = [...EDGES];
  while (all.length < ITEMS * PER_ITEM) all.push(randomDouble());
  return Array.from({ length: ITEMS }, (_, i) => all.slice(i * PER_ITEM, (i + 1) * PER_ITEM));
}

/** Bit-identical, element by element, with the first difference in the message. */
function assertSame(got, want, where) {
  assert.equal(got.length, want.length, `${where}: length`);
  for (let i = 0; i < want.length; i++) {
    if (!Object.is(got[i], want[i])) {
      assert.fail(`${where}: number ${i} came back as ${got[i]} instead of ${want[i]}`);
    }
  }
}

async function exercise(t, server, { restart } = {}) {
  const s = `${TOKEN}-${uid('num')}`;
  const g = 'g';
  const batches = numbers();
  const w = worker(null, server);
  const h = recorder();
  const fn = `${uid('num')}::on-change`;
  w.registerFunction(fn, h);
  w.registerTrigger({ type: 'stream', function_id: fn, config: { stream_name: s } });
  await roundTrip(w);

  const live = await RawClient.connect(server.streamUrl);
  live.send({ type: 'join', data: { subscriptionId: 'live', streamName: s, groupId: g } });
  const first = await live.waitMessage((m) => m.event?.type === 'sync', { what: 'the first sync' });

  for (let i = 0; i < ITEMS; i++) {
    const written = await call(w, 'stream::set', { stream_name: s, group_id: g, item_id: `i${i}`, data: { n: batches[i] } });
    assertSame(written.new_value.n, batches[i], `set result ${i}`);
  }
  for (let i = 0; i < ITEMS; i++) {
    const got = await call(w, 'stream::get', { stream_name: s, group_id: g, item_id: `i${i}` });
    assertSame(got.n, batches[i], `get ${i}`);
  }
  const listed = await call(w, 'stream::list', { stream_name: s, group_id: g });
  listed.forEach((v, i) => assertSame(v.n, batches[i], `list ${i}`));

  // Updates: a `set` op writing the numbers reversed, and the old value in the result.
  const updated = await call(w, 'stream::update', {
    stream_name: s,
    group_id: g,
    item_id: 'i0',
    ops: [{ type: 'set', path: 'm', value: [...batches[0]].reverse() }],
  });
  assertSame(updated.old_value.n, batches[0], 'update old_value');
  assertSame(updated.new_value.m, [...batches[0]].reverse(), 'update new_value');

  // Frames to a live subscriber, and trigger payloads.
  await live.waitMessage((m) => m.event?.type === 'update', { what: 'the update frame', timeoutMs: 10000 });
  const creates = live.messages.filter((m) => m.event?.type === 'create');
  creates.forEach((m, i) => assertSame(m.event.data.n, batches[i], `create frame ${i}`));
  await waitFor(() => h.calls.length === ITEMS + 1, { timeoutMs: 15000, message: () => `${h.calls.length} trigger calls` });
  for (const { input } of h.calls) {
    const i = Number(input.id.slice(1));
    assertSame(input.event.data.n, batches[i], `trigger payload ${input.id}`);
  }

  // A resume from the first sync replays every change with its numbers.
  const resumed = await RawClient.connect(server.streamUrl);
  resumed.send({
    type: 'join',
    data: { subscriptionId: 'again', streamName: s, groupId: g, since: { epoch: first.epoch, seq: first.seq } },
  });
  await resumed.waitMessage((m) => m.event?.type === 'update', { what: 'the replayed update', timeoutMs: 10000 });
  assert.ok(!resumed.messages.some((m) => m.event?.type === 'sync'), 'the resume was served from history');
  resumed.messages
    .filter((m) => m.event?.type === 'create')
    .forEach((m, i) => assertSame(m.event.data.n, batches[i], `replayed frame ${i}`));

  // A group sync.
  const sync = await RawClient.connect(server.streamUrl);
  sync.send({ type: 'join', data: { subscriptionId: 'sync', streamName: s, groupId: g } });
  const synced = await sync.waitMessage((m) => m.event?.type === 'sync', { what: 'the sync' });
  synced.event.data.forEach((v, i) => assertSame(v.n, batches[i], `sync ${i}`));
  for (const c of [live, resumed, sync]) c.ws.close();
  await w.shutdown();

  if (restart) {
    const again = await restart();
    const reader = worker(t, again);
    const after = await call(reader, 'stream::list', { stream_name: s, group_id: g });
    after.forEach((v, i) => assertSame(v.n, batches[i], `after the restart, item ${i}`));
  }
}

describe('exact numbers: 10,000 random doubles round-trip bit for bit', () => {
  test('in memory', async (t) => {
    const server = await startServer();
    t.after(() => server.stop());
    await exercise(t, server);
  });

  test('in the file store, across a restart', async (t) => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'iii-stream-numbers-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const opts = {
      ports: [await freePort(), await freePort()],
      stream: { adapter: { name: 'kv', config: { store_method: 'file_based', file_path: dir } } },
    };
    let server = await startServer(opts);
    t.after(() => server.stop());
    await exercise(t, server, {
      restart: async () => {
        await server.stop();
        server = await startServer(opts);
        return server;
      },
    });
  });

  test('on Redis', async (t) => {
    const server = await startServer(onRedis);
    t.after(() => server.stop());
    t.after(() => cleanupRedis(TOKEN));
    await exercise(t, server);
  });
});

