// Shared end-to-end scenarios for the published Motia stream clients (clients.md §1.4, §1.5, §2.5)
// against the stream port (stream.md §2, §8; improvements a, c, f, n, o).
//
// motia-client.test.mjs (@motiadev/stream-client-node) and motia-browser.test.mjs
// (@motiadev/stream-client-browser) both call defineMotiaSuite() with their `Stream` class, so every
// scenario runs against both clients unchanged. Writers are iii-sdk@0.22.1 workers.
//
// Only the client's public API is used to observe state (subscribeGroup/subscribeItem,
// addChangeListener, onEvent, getState, close). Two internals are touched, and only for
// observation and cleanup: `stream.ws` (the client's socket adapter, whose `.ws` is the socket) to
// tap the raw frames and to know when the socket is open, and `stream.adapterFactory` to do the same
// for the sockets the client opens when it reconnects.
//
// Client facts these tests rely on (read from the published code and confirmed by the tests):
// - A subscription calls its change listeners on every state change; the first call is the sync.
// - The Node client registers no 'error' listener on its `ws` socket, so a refused connection or a
//   non-101 handshake answer (401) throws an unhandled 'error' event and kills the process
//   (see the child-process test in motia-client.test.mjs). openStream() therefore adds a no-op
//   'error' listener to every socket of a Node-client Stream (`guardErrors`), so that a server
//   problem fails one test instead of killing the whole file. Browsers never throw for WebSocket
//   error events, so the browser client needs no guard.
// - Stream.close() does not cancel a reconnect already scheduled (2 s after a socket closed), so a
//   Stream closed while disconnected reconnects once and then stays open for ever. closeStream()
//   waits for an open socket before closing and disables reconnects afterwards, so files exit.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { isDeepStrictEqual } from 'node:util';
import {
  RawClient,
  TESTS_DIR,
  assertNever,
  call,
  delay,
  recorder,
  roundTrip,
  setupServer,
  startServer,
  trackChild,
  uid,
  waitFor,
  worker,
} from './server.mjs';

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

// ---------------------------------------------------------------------------------------------
// Client helpers
// ---------------------------------------------------------------------------------------------

/**
 * Construct a client Stream on `url` and wait until its socket is open. Closed after the test.
 * Returns {stream, frames, sockets, close()}: `frames` are the parsed JSON frames received on all of
 * this Stream's sockets (in arrival order), `sockets` the sockets the client opened.
 */
export async function openStream(t, Stream, url, options, { guardErrors = false, waitOpen = true } = {}) {
  const stream = options === undefined ? new Stream(url) : new Stream(url, options);
  const h = { stream, frames: [], sockets: [], closed: false };
  const instrument = (adapter) => {
    const ws = adapter.ws;
    h.sockets.push(ws);
    if (guardErrors && typeof ws.on === 'function') ws.on('error', () => {});
    ws.addEventListener('message', (e) => {
      const text = typeof e.data === 'string' ? e.data : String(e.data);
      try {
        h.frames.push(JSON.parse(text));
      } catch {
        h.frames.push({ unparsable: text });
      }
    });
  };
  instrument(stream.ws);
  const factory = stream.adapterFactory;
  stream.adapterFactory = () => {
    const adapter = factory();
    instrument(adapter);
    return adapter;
  };
  h.isOpen = () => stream.ws.isOpen();
  h.close = () => closeStream(h);
  if (t) t.after(() => h.close());
  if (waitOpen) await waitFor(() => h.isOpen(), { timeoutMs: 5000, message: `Motia Stream did not open on ${url}` });
  return h;
}

/** Close a Stream for good (see the header comment for why it waits for an open socket). */
export async function closeStream(h) {
  if (h.closed) return;
  h.closed = true;
  await waitFor(() => h.stream.ws.isOpen(), { timeoutMs: 5000 }).catch(() => {});
  h.stream.close();
  // Cleanup only: no reconnect after this (a scheduled one would keep the process alive).
  h.stream.onSocketClose = () => {};
  h.stream.createSocket = () => h.stream.ws;
}

/**
 * Record a subscription's state changes and custom events. `rec.states` holds a copy of every
 * state passed to the change listeners (the first is the sync); `rec.events.get(type)` the data of
 * every onEvent call for that type.
 */
export function track(sub, eventTypes = []) {
  const rec = { sub, id: sub.sub.subscriptionId, states: [], events: new Map() };
  sub.addChangeListener((state) => rec.states.push(structuredClone(state)));
  for (const type of eventTypes) {
    rec.events.set(type, []);
    sub.onEvent(type, (data) => rec.events.get(type).push(data));
  }
  rec.synced = () => rec.states.length > 0;
  rec.state = () => sub.getState();
  rec.eventsOf = (type) => rec.events.get(type);
  return rec;
}

/** Wait until every recorder got its sync, then ≥ 2 ms more (clients.md §2.5.6). */
export async function synced(...recs) {
  await waitFor(() => recs.every((r) => r.synced()), {
    message: () => `no sync for ${recs.filter((r) => !r.synced()).map((r) => JSON.stringify(r.sub.sub)).join(', ')}`,
  });
  await delay(3);
}

/** Poll until the client state deep-equals what `expectedFn` (async) returns. */
export async function converges(rec, expectedFn, { what = 'state', timeoutMs = 5000 } = {}) {
  let expected;
  await waitFor(
    async () => {
      expected = await expectedFn();
      return isDeepStrictEqual(rec.state(), expected);
    },
    {
      timeoutMs,
      message: () =>
        `${what}: client state ${JSON.stringify(rec.state())} never equalled the server's ${JSON.stringify(expected)}`,
    },
  );
}

const listOf = (w, stream_name, group_id) => () => call(w, 'stream::list', { stream_name, group_id });
const getOf = (w, stream_name, group_id, item_id) => async () =>
  (await call(w, 'stream::get', { stream_name, group_id, item_id })) ?? null;

/** The frames tapped on a Stream for one subscription id. */
const framesFor = (h, subscriptionId) => h.frames.filter((f) => f.subscriptionId === subscriptionId);

/** Strip `subscriptionId` (to compare copies of one event, improvements f). */
function withoutSub(f) {
  const { subscriptionId: _drop, ...rest } = f;
  return rest;
}

/** Within one subscription's frames: seq +1 per event and strictly increasing timestamps (ext b, n). */
function assertMonotonic(frames, what) {
  for (let i = 1; i < frames.length; i++) {
    const [a, b] = [frames[i - 1], frames[i]];
    assert.equal(b.epoch, a.epoch, `${what}: epoch changed`);
    assert.equal(b.seq, a.seq + 1, `${what}: seq ${a.seq} then ${b.seq}`);
    assert.ok(b.timestamp > a.timestamp, `${what}: timestamp ${a.timestamp} then ${b.timestamp} (improvements n)`);
  }
}

// ---------------------------------------------------------------------------------------------
// Child-process probe (real platform WebSocket; unguarded Node client)
// ---------------------------------------------------------------------------------------------

/**
 * Run lib/motia-probe.mjs in a child process. `config` is passed to the probe (see that file).
 * opts.platformWebSocket: make sure the child has the platform WebSocket (adds
 * --experimental-websocket on Node versions that need it).
 * Returns {lines, send(cmd), waitLine(pred), exited, stderr()}.
 */
export function spawnProbe(t, config, { platformWebSocket = false } = {}) {
  const args = [];
  // Node 22 and later have a global WebSocket by default (the parent may have installed a wrapper
  // of its own, so its global says nothing about the child).
  if (platformWebSocket && Number(process.versions.node.split('.')[0]) < 22) args.push('--experimental-websocket');
  args.push(path.join(TESTS_DIR, 'lib', 'motia-probe.mjs'), JSON.stringify(config));
  const child = trackChild(spawn(process.execPath, args, { cwd: TESTS_DIR, stdio: ['pipe', 'pipe', 'pipe'] }));
  const p = { lines: [], out: '', err: '', exitInfo: null };
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stdout.on('data', (c) => {
    p.out += c;
    let nl;
    while ((nl = p.out.indexOf('\n')) >= 0) {
      const line = p.out.slice(0, nl);
      p.out = p.out.slice(nl + 1);
      if (line.trim()) p.lines.push(JSON.parse(line));
    }
  });
  child.stderr.on('data', (c) => (p.err += c));
  p.exited = new Promise((resolve) =>
    child.once('exit', (code, signal) => {
      p.exitInfo = { code, signal };
      resolve(p.exitInfo);
    }),
  );
  child.stdin.on('error', () => {});
  p.send = (cmd) => {
    if (!p.exitInfo) child.stdin.write(`${JSON.stringify(cmd)}\n`);
  };
  p.stderr = () => p.err;
  p.waitLine = (pred, { timeoutMs = 5000, what = 'a probe line' } = {}) =>
    waitFor(() => p.lines.find(pred), {
      timeoutMs,
      message: () => `${what}; probe lines: ${JSON.stringify(p.lines).slice(0, 3000)}; stderr: ${p.err.slice(0, 2000)}`,
    });
  p.lastState = (sub) => {
    const states = p.lines.filter((l) => l.ev === 'state' && l.sub === sub);
    return states.length ? states[states.length - 1].state : undefined;
  };
  p.kill = () => {
    if (!p.exitInfo) child.kill('SIGKILL');
  };
  if (t)
    t.after(async () => {
      p.send({ cmd: 'exit' });
      const timer = setTimeout(() => p.kill(), 3000);
      await p.exited;
      clearTimeout(timer);
    });
  return p;
}

// ---------------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------------

/**
 * Define the client scenarios for one Motia client.
 * client: 'node' | 'browser' (used in names and for the Sec-WebSocket-Protocol header form).
 * Stream: the client's Stream class.
 * guardErrors: add a no-op 'error' listener to the client's `ws` sockets (Node client).
 * headerSeparator: how the client's WebSocket joins the offered subprotocols.
 */
export function defineMotiaSuite({ client, Stream, guardErrors = false, headerSeparator }) {
  const env = setupServer();
  const open = (t, url = env.server.streamUrl, options, extra) =>
    openStream(t, Stream, url, options, { guardErrors, ...extra });

  describe(`${client} client: sync and live changes`, () => {
    test('group subscription: sync with existing items, then live create/update/delete; final state equals stream::list', async (t) => {
      const w = worker(t, env.server);
      const s = uid('mg');
      const g = 'g1';
      const set = (item_id, data) => call(w, 'stream::set', { stream_name: s, group_id: g, item_id, data });
      await set('a', { id: 'a', n: 1 });
      await set('b', { id: 'b', n: 2, tags: ['x'] });
      await set('c', { id: 'c', n: 3, nested: { deep: true } });

      const h = await open(t);
      const grp = track(h.stream.subscribeGroup(s, g));
      await synced(grp);
      // The sync is the full group in insertion order (stream.md §1, §8.4), as stream::list gives it.
      assert.deepEqual(grp.states[0], await call(w, 'stream::list', { stream_name: s, group_id: g }));
      assert.deepEqual(grp.states[0].map((v) => v.id), ['a', 'b', 'c']);
      const sync = framesFor(h, grp.id)[0];
      assert.equal(sync.event.type, 'sync');
      assert.strictEqual(sync.id, null, 'a group sync has id null (clients.md §2.5.3)');

      await set('d', { id: 'd', n: 4 }); // create
      await waitFor(() => grp.state().some((v) => v.id === 'd'), { message: 'live create not reflected' });
      await set('b', { id: 'b', n: 20 }); // update by set
      await call(w, 'stream::update', {
        stream_name: s,
        group_id: g,
        item_id: 'c',
        ops: [{ type: 'set', path: 'n', value: 30 }, { type: 'merge', path: 'nested', value: { more: 1 } }],
      }); // update by ops
      await call(w, 'stream::delete', { stream_name: s, group_id: g, item_id: 'a' }); // delete
      await set('e', { id: 'e', n: 5 });
      await call(w, 'stream::update', { stream_name: s, group_id: g, item_id: 'f', ops: [{ type: 'set', path: 'id', value: 'f' }] }); // create by update

      await converges(grp, listOf(w, s, g), { what: 'group state' });
      assert.deepEqual(grp.state().map((v) => v.id), ['b', 'c', 'd', 'e', 'f']);
      assert.deepEqual(
        grp.state().find((v) => v.id === 'c'),
        { id: 'c', n: 30, nested: { deep: true, more: 1 } },
      );
      // Every change was a separate state change: sync + 6 writes.
      await waitFor(() => grp.states.length === 7, { message: () => `states: ${JSON.stringify(grp.states)}` });
      assertMonotonic(framesFor(h, grp.id), 'group frames');
      assert.deepEqual(
        framesFor(h, grp.id).map((f) => [f.event.type, f.id]),
        [['sync', null], ['create', 'd'], ['update', 'b'], ['update', 'c'], ['delete', 'a'], ['create', 'e'], ['create', 'f']],
      );
    });

    test('group subscription on an unknown group syncs [] and then receives the first items', async (t) => {
      const w = worker(t, env.server);
      const s = uid('mg0');
      const h = await open(t);
      const grp = track(h.stream.subscribeGroup(s, 'nothing-yet'));
      await synced(grp);
      assert.deepEqual(grp.states, [[]]);
      await call(w, 'stream::set', { stream_name: s, group_id: 'nothing-yet', item_id: 'x', data: { id: 'x', v: 'first' } });
      await converges(grp, listOf(w, s, 'nothing-yet'));
      assert.deepEqual(grp.state(), [{ id: 'x', v: 'first' }]);
    });

    test('item subscription: sync value, then live updates and delete; final state equals stream::get', async (t) => {
      const w = worker(t, env.server);
      const s = uid('mi');
      const g = 'g';
      await call(w, 'stream::set', { stream_name: s, group_id: g, item_id: 'a', data: { id: 'a', v: 1 } });
      const h = await open(t);
      const ia = track(h.stream.subscribeItem(s, g, 'a'));
      const im = track(h.stream.subscribeItem(s, g, 'm')); // missing at join time
      await synced(ia, im);
      assert.deepEqual(ia.states, [{ id: 'a', v: 1 }]);
      assert.deepEqual(im.states, [null], 'missing item syncs null');
      const syncA = framesFor(h, ia.id)[0];
      assert.equal(syncA.id, 'a', 'an item sync carries the item id (clients.md §2.5.3)');

      await call(w, 'stream::set', { stream_name: s, group_id: g, item_id: 'a', data: { id: 'a', v: 2 } });
      await waitFor(() => ia.state()?.v === 2, { message: 'live update not reflected' });
      await call(w, 'stream::update', {
        stream_name: s,
        group_id: g,
        item_id: 'a',
        ops: [{ type: 'increment', path: 'v', by: 40 }, { type: 'set', path: 'label', value: 'forty-two' }],
      });
      await call(w, 'stream::set', { stream_name: s, group_id: g, item_id: 'm', data: { id: 'm', text: 'made' } });
      await converges(ia, getOf(w, s, g, 'a'), { what: 'item a' });
      await converges(im, getOf(w, s, g, 'm'), { what: 'item m' });
      assert.deepEqual(ia.state(), { id: 'a', v: 42, label: 'forty-two' });
      await call(w, 'stream::delete', { stream_name: s, group_id: g, item_id: 'm' });
      await converges(im, getOf(w, s, g, 'm'), { what: 'deleted item m' });
      assert.deepEqual(im.states, [null, { id: 'm', text: 'made' }, null]);
      assert.deepEqual(ia.states, [{ id: 'a', v: 1 }, { id: 'a', v: 2 }, { id: 'a', v: 42, label: 'forty-two' }]);
      // Item subscriptions only get their item's frames.
      assert.ok(framesFor(h, ia.id).every((f) => f.id === 'a'));
      assert.deepEqual(framesFor(h, im.id).map((f) => f.event.type), ['sync', 'create', 'delete']);
    });

    test('custom events with and without id: onEvent gets event.event.data; without id only the group subscription', async (t) => {
      const w = worker(t, env.server);
      const s = uid('mev');
      const g = 'room';
      const send = (payload) => call(w, 'stream::send', { stream_name: s, group_id: g, ...payload });
      await call(w, 'stream::set', { stream_name: s, group_id: g, item_id: 'a', data: { id: 'a' } });
      // Separate connections, so that no frame is duplicated (that case has its own test).
      const hg = await open(t);
      const hi = await open(t);
      const grp = track(hg.stream.subscribeGroup(s, g), ['typing', 'done', 'other']);
      const item = track(hi.stream.subscribeItem(s, g, 'a'), ['typing', 'done', 'other']);
      await synced(grp, item);

      const result = await send({ type: 'typing', id: 'a', data: { who: 'u1' } });
      assert.strictEqual(result, null, 'stream::send returns null');
      await send({ type: 'typing', data: { who: 'u2' } }); // no id: group only
      await send({ type: 'typing', id: 'b', data: 'for b' }); // another item: group only
      await send({ type: 'other', id: 'a', data: null });
      await send({ type: 'typing', id: 'a', data: [1, 'two', { three: 3 }] });
      await send({ type: 'done', id: 'a', data: 0 }); // sentinel for both
      await waitFor(() => grp.eventsOf('done').length === 1 && item.eventsOf('done').length === 1, {
        message: () => `sentinel not received: group ${JSON.stringify([...grp.events])}, item ${JSON.stringify([...item.events])}`,
      });
      assert.deepEqual(grp.eventsOf('typing'), [{ who: 'u1' }, { who: 'u2' }, 'for b', [1, 'two', { three: 3 }]]);
      assert.deepEqual(item.eventsOf('typing'), [{ who: 'u1' }, [1, 'two', { three: 3 }]]);
      assert.deepEqual(grp.eventsOf('other'), [null]);
      assert.deepEqual(item.eventsOf('other'), [null]);
      assert.deepEqual(grp.eventsOf('done'), [0]);
      // Custom events do not change state.
      assert.equal(grp.states.length, 1);
      assert.equal(item.states.length, 1);
      // Frame shape (stream.md §2.2): id is the send's id or null.
      const evFrames = framesFor(hg, grp.id).filter((f) => f.event.type === 'event');
      assert.deepEqual(
        evFrames.map((f) => f.id),
        ['a', null, 'b', 'a', 'a', 'a'],
      );
      assert.deepEqual(evFrames[1].event, { type: 'event', event: { type: 'typing', data: { who: 'u2' } } });
      assert.ok(framesFor(hi, item.id).every((f) => f.id === 'a'), 'the item subscription only sees frames of its item');
    });

    test('isolation: a client on stream s/group g1 never sees other groups or streams (including prefixes)', async (t) => {
      const w = worker(t, env.server);
      const s = uid('miso');
      const other = `${s}:x`; // a stream whose name extends s
      const h = await open(t);
      const grp = track(h.stream.subscribeGroup(s, 'g1'), ['ping']);
      const item = track(h.stream.subscribeItem(s, 'g1', 'a'), ['ping']);
      await synced(grp, item);

      const set = (stream_name, group_id, item_id, data) => call(w, 'stream::set', { stream_name, group_id, item_id, data });
      for (const [st, gr] of [
        [s, 'g2'],
        [s, 'g1:x'],
        [s, 'G1'],
        [other, 'g1'],
        [`${s}x`, 'g1'],
      ]) {
        await set(st, gr, 'a', { id: 'a', from: `${st}/${gr}` });
        await call(w, 'stream::update', { stream_name: st, group_id: gr, item_id: 'a', ops: [{ type: 'set', path: 'n', value: 1 }] });
        await call(w, 'stream::send', { stream_name: st, group_id: gr, id: 'a', type: 'ping', data: `${st}/${gr}` });
        await call(w, 'stream::send', { stream_name: st, group_id: gr, type: 'ping', data: `${st}/${gr}` });
        await call(w, 'stream::delete', { stream_name: st, group_id: gr, item_id: 'a' });
      }
      // Sentinel in the subscribed group.
      await set(s, 'g1', 'a', { id: 'a', from: 'mine' });
      await call(w, 'stream::send', { stream_name: s, group_id: 'g1', id: 'a', type: 'ping', data: 'mine' });
      await waitFor(() => grp.eventsOf('ping').length >= 1 && item.eventsOf('ping').length >= 1, { message: 'sentinel not received' });
      await assertNever(() => h.frames.some((f) => f.streamName !== s || f.groupId !== 'g1'), {
        forMs: 200,
        message: () => `foreign frames: ${JSON.stringify(h.frames.filter((f) => f.streamName !== s || f.groupId !== 'g1'))}`,
      });
      assert.deepEqual(grp.state(), [{ id: 'a', from: 'mine' }]);
      assert.deepEqual(item.state(), { id: 'a', from: 'mine' });
      assert.deepEqual(grp.eventsOf('ping'), ['mine', 'mine'], 'the group subscription got its own event twice (duplicate copy, clients.md §2.5.4)');
      assert.deepEqual(item.eventsOf('ping'), ['mine']);
      assert.deepEqual(grp.states, [[], [{ id: 'a', from: 'mine' }]]);
    });
  });

  describe(`${client} client: duplicates, subprotocol, join gate, leave`, () => {
    test('duplicates: a group and an item subscription on one socket converge; copies differ only in subscriptionId', async (t) => {
      const w = worker(t, env.server);
      const s = uid('mdup');
      const g = 'g';
      const h = await open(t);
      const grp = track(h.stream.subscribeGroup(s, g), ['ping']);
      const item = track(h.stream.subscribeItem(s, g, 'a'), ['ping']);
      await synced(grp, item);
      assert.notEqual(grp.id, item.id);
      assert.match(grp.id, UUID_V4);
      assert.match(item.id, UUID_V4);

      const set = (item_id, data) => call(w, 'stream::set', { stream_name: s, group_id: g, item_id, data });
      await set('a', { id: 'a', v: 1 });
      await set('b', { id: 'b', v: 1 });
      await set('a', { id: 'a', v: 2 });
      await call(w, 'stream::update', { stream_name: s, group_id: g, item_id: 'a', ops: [{ type: 'set', path: 'v', value: 3 }] });
      await call(w, 'stream::send', { stream_name: s, group_id: g, id: 'a', type: 'ping', data: { n: 1 } });
      await call(w, 'stream::delete', { stream_name: s, group_id: g, item_id: 'b' });
      await set('a', { id: 'a', v: 4 });
      await converges(grp, listOf(w, s, g), { what: 'group state' });
      await converges(item, getOf(w, s, g, 'a'), { what: 'item state' });
      assert.deepEqual(grp.state(), [{ id: 'a', v: 4 }], 'no duplicate element in the group state');

      // Wire: every frame of item a twice (one per subscription), b's frames once (improvements f).
      await waitFor(() => h.frames.filter((f) => f.event.type !== 'sync').length === 5 * 2 + 2, {
        message: () => `frames: ${JSON.stringify(h.frames)}`,
      });
      const bySeq = new Map();
      for (const f of h.frames.filter((f) => f.event.type !== 'sync')) {
        if (!bySeq.has(f.seq)) bySeq.set(f.seq, []);
        bySeq.get(f.seq).push(f);
      }
      for (const [seq, copies] of bySeq) {
        if (copies[0].id === 'a') {
          assert.equal(copies.length, 2, `seq ${seq}: two copies`);
          assert.deepEqual(new Set(copies.map((c) => c.subscriptionId)), new Set([grp.id, item.id]));
          assert.deepEqual(withoutSub(copies[0]), withoutSub(copies[1]), 'copies differ only in subscriptionId');
        } else {
          assert.equal(copies.length, 1, `seq ${seq}: one copy`);
          assert.equal(copies[0].subscriptionId, grp.id);
        }
      }
      // onEvent: the client hands both copies to both rooms. The group subscription does not
      // de-duplicate custom events (fires twice); the item subscription drops the second copy
      // because its timestamp is not greater than the first one's (clients.md §2.5.4, §2.5.6).
      assert.deepEqual(grp.eventsOf('ping'), [{ n: 1 }, { n: 1 }]);
      assert.deepEqual(item.eventsOf('ping'), [{ n: 1 }]);
    });

    test(`subprotocol: protocols ['Authorization', token] connects, selects "Authorization" and syncs (improvements o)`, async (t) => {
      const w = worker(t, env.server);
      const s = uid('mproto');
      await call(w, 'stream::set', { stream_name: s, group_id: 'g', item_id: 'i', data: { id: 'i', ok: true } });
      const h = await open(t, env.server.streamUrl, { protocols: ['Authorization', 'tok'] });
      assert.equal(h.sockets[0].protocol, 'Authorization', 'the server selected the first offered subprotocol');
      const grp = track(h.stream.subscribeGroup(s, 'g'));
      const item = track(h.stream.subscribeItem(s, 'g', 'i'));
      await synced(grp, item);
      assert.deepEqual(grp.state(), [{ id: 'i', ok: true }]);
      assert.deepEqual(item.state(), { id: 'i', ok: true });
      await call(w, 'stream::set', { stream_name: s, group_id: 'g', item_id: 'i', data: { id: 'i', ok: 'still' } });
      await converges(item, getOf(w, s, 'g', 'i'));
      await converges(grp, listOf(w, s, 'g'));
    });

    test('join gate: a stream:join handler returning {unauthorized: true} for one group; the client never gets its state, another group works', async (t) => {
      const w = worker(t, env.server);
      const s = uid('mgate');
      const gateFn = `${uid('gate')}::join`;
      const gate = recorder((input) => (input.group_id === 'secret' ? { unauthorized: true } : { unauthorized: false }));
      w.registerFunction(gateFn, gate);
      w.registerTrigger({ type: 'stream:join', function_id: gateFn, config: { stream_name: s } });
      await roundTrip(w);
      await call(w, 'stream::set', { stream_name: s, group_id: 'secret', item_id: 'k', data: { id: 'k', hidden: 1 } });
      await call(w, 'stream::set', { stream_name: s, group_id: 'open', item_id: 'k', data: { id: 'k', shown: 1 } });

      const h = await open(t);
      const secretGroup = track(h.stream.subscribeGroup(s, 'secret'), ['ev']);
      const secretItem = track(h.stream.subscribeItem(s, 'secret', 'k'), ['ev']);
      const openGroup = track(h.stream.subscribeGroup(s, 'open'), ['ev']);
      await synced(openGroup);
      assert.deepEqual(openGroup.state(), [{ id: 'k', shown: 1 }]);

      // The server did answer both refused joins with an `unauthorized` frame (stream.md §8.5),
      // which the client ignores (clients.md §2.5.7).
      await waitFor(() => framesFor(h, secretGroup.id).length === 1 && framesFor(h, secretItem.id).length === 1, {
        message: () => `frames: ${JSON.stringify(h.frames)}`,
      });
      const [ug] = framesFor(h, secretGroup.id);
      const [ui] = framesFor(h, secretItem.id);
      assert.deepEqual(ug.event, { type: 'unauthorized' });
      assert.strictEqual(ug.id, null);
      assert.equal(ug.reason, 'rejected');
      assert.deepEqual(ui.event, { type: 'unauthorized' });
      assert.equal(ui.id, 'k');

      // Writes and events to the refused group never reach the client; the open group still works.
      await call(w, 'stream::set', { stream_name: s, group_id: 'secret', item_id: 'k', data: { id: 'k', hidden: 2 } });
      await call(w, 'stream::send', { stream_name: s, group_id: 'secret', id: 'k', type: 'ev', data: 'hidden' });
      await call(w, 'stream::send', { stream_name: s, group_id: 'open', id: 'k', type: 'ev', data: 'shown' });
      await call(w, 'stream::set', { stream_name: s, group_id: 'open', item_id: 'k', data: { id: 'k', shown: 2 } });
      await converges(openGroup, listOf(w, s, 'open'));
      assert.deepEqual(openGroup.eventsOf('ev'), ['shown']);
      await assertNever(() => secretGroup.states.length > 0 || secretItem.states.length > 0, { forMs: 200, message: 'refused subscription got state' });
      assert.deepEqual(secretGroup.eventsOf('ev'), []);
      assert.deepEqual(secretItem.eventsOf('ev'), []);
      assert.strictEqual(secretGroup.state().length, 0);
      assert.strictEqual(secretItem.state(), null);
      assert.equal(framesFor(h, secretGroup.id).length, 1, 'nothing after the unauthorized frame');
      assert.equal(framesFor(h, secretItem.id).length, 1, 'nothing after the unauthorized frame');

      // The gate saw the §7.2 payloads.
      const joins = gate.inputs();
      assert.deepEqual(
        joins.map((j) => [j.subscription_id, j.stream_name, j.group_id, j.id, j.context]).sort(),
        [
          [secretGroup.id, s, 'secret', null, null],
          [secretItem.id, s, 'secret', 'k', null],
          [openGroup.id, s, 'open', null, null],
        ].sort(),
      );
    });

    test('leave triggers: subscription.close() fires stream:leave once; closing the Stream fires it once for every remaining subscription', async (t) => {
      const w = worker(t, env.server);
      const s = uid('mleave');
      const joinFn = `${uid('j')}::join`;
      const leaveFn = `${uid('l')}::leave`;
      const joins = recorder();
      const leaves = recorder();
      w.registerFunction(joinFn, joins);
      w.registerFunction(leaveFn, leaves);
      w.registerTrigger({ type: 'stream:join', function_id: joinFn, config: { stream_name: s } });
      w.registerTrigger({ type: 'stream:leave', function_id: leaveFn, config: { stream_name: s } });
      await roundTrip(w);

      const h = await open(t);
      const g1 = track(h.stream.subscribeGroup(s, 'g1'));
      const i1 = track(h.stream.subscribeItem(s, 'g1', 'x'));
      const g2 = track(h.stream.subscribeGroup(s, 'g2'));
      await synced(g1, i1, g2);
      await waitFor(() => joins.calls.length === 3);
      assert.deepEqual(leaves.calls.length, 0);

      i1.sub.close();
      await waitFor(() => leaves.calls.length >= 1, { message: 'no leave after subscription.close()' });
      assert.deepEqual(leaves.inputs()[0], { subscription_id: i1.id, stream_name: s, group_id: 'g1', id: 'x', context: null });
      // The closed subscription no longer receives frames; the others do.
      await call(w, 'stream::set', { stream_name: s, group_id: 'g1', item_id: 'x', data: { id: 'x', v: 1 } });
      await converges(g1, listOf(w, s, 'g1'));
      assert.equal(framesFor(h, i1.id).length, 1, 'only the sync reached the closed item subscription');

      await h.close();
      await waitFor(() => leaves.calls.length >= 3, { message: () => `leaves: ${JSON.stringify(leaves.inputs())}` });
      await assertNever(() => leaves.calls.length > 3, { forMs: 300, message: () => `extra leaves: ${JSON.stringify(leaves.inputs())}` });
      const byId = new Map(leaves.inputs().map((l) => [l.subscription_id, l]));
      assert.equal(byId.size, 3, 'exactly one leave per subscription');
      assert.deepEqual(byId.get(g1.id), { subscription_id: g1.id, stream_name: s, group_id: 'g1', id: null, context: null });
      assert.deepEqual(byId.get(g2.id), { subscription_id: g2.id, stream_name: s, group_id: 'g2', id: null, context: null });
      // Joins were sent with the client's subscriptionIds; group joins without an id (§2.5.1).
      assert.deepEqual(
        new Set(joins.inputs().map((j) => `${j.subscription_id}|${j.group_id}|${j.id}`)),
        new Set([`${g1.id}|g1|null`, `${i1.id}|g1|x`, `${g2.id}|g2|null`]),
      );
    });

    test('200 back-to-back stream::update appends to one item: item and group subscriptions end with the final value (improvements n)', async (t) => {
      const w = worker(t, env.server);
      const s = uid('mappend');
      const g = 'g';
      await call(w, 'stream::set', { stream_name: s, group_id: g, item_id: 'msg', data: { id: 'msg', text: '' } });
      const hi = await open(t);
      const hg = await open(t);
      const item = track(hi.stream.subscribeItem(s, g, 'msg'));
      const grp = track(hg.stream.subscribeGroup(s, g));
      await synced(item, grp);
      const N = 200;
      await Promise.all(
        Array.from({ length: N }, () =>
          call(w, 'stream::update', { stream_name: s, group_id: g, item_id: 'msg', ops: [{ type: 'append', path: 'text', value: 'x' }] }),
        ),
      );
      const final = { id: 'msg', text: 'x'.repeat(N) };
      assert.deepEqual(await getOf(w, s, g, 'msg')(), final);
      await converges(item, async () => final, { what: 'item subscription' });
      await converges(grp, async () => [final], { what: 'group subscription' });
      await waitFor(() => framesFor(hi, item.id).length === N + 1 && framesFor(hg, grp.id).length === N + 1);
      // Every update was applied by both subscriptions (none dropped by the client's timestamp check).
      assert.equal(item.states.length, N + 1);
      assert.equal(grp.states.length, N + 1);
      assert.deepEqual(item.states.map((v) => v.text.length), Array.from({ length: N + 1 }, (_, i) => i));
      assertMonotonic(framesFor(hi, item.id).slice(1), 'item frames');
      assertMonotonic(framesFor(hg, grp.id).slice(1), 'group frames');
      const [isync, ifirst] = framesFor(hi, item.id);
      assert.ok(ifirst.timestamp > isync.timestamp, 'the first update is newer than the sync');
    });
  });

  describe(`${client} client: auth function`, () => {
    const AUTH = 'motia-e2e::auth';
    let authCalls;
    let aw;
    // Registered before setupServer's hook so that the worker leaves before its server stops.
    after(async () => {
      await aw?.shutdown();
    });
    const authEnv = setupServer({ stream: { auth_function: AUTH } });
    const joins = recorder();
    const leaves = recorder();
    before(async () => {
      aw = worker(null, authEnv.server);
      authCalls = [];
      aw.registerFunction(AUTH, async (input) => {
        authCalls.push(input);
        const token = input?.query_params?.token?.[0] ?? (input?.headers?.['sec-websocket-protocol'] ?? '').split(',').map((x) => x.trim())[1];
        if (token === 'deny') return { unauthorized: true };
        return { context: { user: `u-${token ?? 'anonymous'}`, roles: ['reader'], n: 1 } };
      });
      aw.registerFunction('motia-e2e::join', joins);
      aw.registerFunction('motia-e2e::leave', leaves);
      aw.registerTrigger({ type: 'stream:join', function_id: 'motia-e2e::join', config: {} });
      aw.registerTrigger({ type: 'stream:leave', function_id: 'motia-e2e::leave', config: {} });
      await roundTrip(aw);
    });

    test('auth input: subprotocol header, path, repeated query params, addr; its context reaches stream:join and stream:leave', async (t) => {
      const w = worker(t, authEnv.server);
      const s = uid('mauth');
      const tok = uid('tok');
      const qtok = uid('q');
      await call(w, 'stream::set', { stream_name: s, group_id: 'g', item_id: 'i', data: { id: 'i', v: 1 } });
      const url = `${authEnv.server.streamUrl}/?token=${qtok}&x=1&x=2&flag`;
      const h = await open(t, url, { protocols: ['Authorization', tok] });
      assert.equal(h.sockets[0].protocol, 'Authorization');
      const grp = track(h.stream.subscribeGroup(s, 'g'));
      const item = track(h.stream.subscribeItem(s, 'g', 'i'));
      await synced(grp, item);
      assert.deepEqual(grp.state(), [{ id: 'i', v: 1 }]);
      assert.deepEqual(item.state(), { id: 'i', v: 1 });

      const input = authCalls.find((c) => c.query_params?.token?.[0] === qtok);
      assert.ok(input, `auth function not called for this connection; calls: ${JSON.stringify(authCalls)}`);
      assert.deepEqual(Object.keys(input).sort(), ['addr', 'headers', 'path', 'query_params']);
      const proto = input.headers['sec-websocket-protocol'];
      assert.equal(typeof proto, 'string', `headers: ${JSON.stringify(input.headers)}`);
      assert.deepEqual(proto.split(',').map((p) => p.trim()), ['Authorization', tok]);
      if (headerSeparator !== undefined) assert.equal(proto, `Authorization${headerSeparator}${tok}`, 'the header value as the client sent it');
      assert.equal(input.headers.host, `127.0.0.1:${authEnv.server.streamPort}`);
      assert.equal(input.headers.upgrade?.toLowerCase(), 'websocket');
      for (const name of Object.keys(input.headers)) assert.equal(name, name.toLowerCase(), 'header names are lower-case');
      assert.equal(input.path, '/');
      assert.deepEqual(input.query_params, { token: [qtok], x: ['1', '2'], flag: [''] });
      assert.match(input.addr, /^127\.0\.0\.1:\d+$/);
      const localPort = h.sockets[0]._socket?.localPort;
      if (localPort) assert.equal(input.addr, `127.0.0.1:${localPort}`, 'addr is the client socket address');

      const context = { user: `u-${qtok}`, roles: ['reader'], n: 1 };
      await waitFor(() => joins.inputs().filter((j) => j.stream_name === s).length === 2);
      for (const j of joins.inputs().filter((j) => j.stream_name === s)) assert.deepEqual(j.context, context);
      item.sub.close();
      await waitFor(() => leaves.inputs().some((l) => l.subscription_id === item.id));
      await h.close();
      await waitFor(() => leaves.inputs().filter((l) => l.stream_name === s).length === 2);
      assert.deepEqual(
        leaves.inputs().filter((l) => l.stream_name === s).sort((a, b) => (a.id ?? '').localeCompare(b.id ?? '')),
        [
          { subscription_id: grp.id, stream_name: s, group_id: 'g', id: null, context },
          { subscription_id: item.id, stream_name: s, group_id: 'g', id: 'i', context },
        ],
      );
    });

    test('query-string token without subprotocol (the portable form): context from the token', async (t) => {
      const w = worker(t, authEnv.server);
      const s = uid('mauthq');
      const qtok = uid('q');
      const h = await open(t, `${authEnv.server.streamUrl}?token=${qtok}`);
      assert.equal(h.sockets[0].protocol, '', 'no subprotocol offered, none selected');
      const grp = track(h.stream.subscribeGroup(s, 'g'));
      await synced(grp);
      await call(w, 'stream::set', { stream_name: s, group_id: 'g', item_id: 'i', data: { id: 'i' } });
      await converges(grp, listOf(w, s, 'g'));
      const input = authCalls.find((c) => c.query_params?.token?.[0] === qtok);
      assert.ok(input);
      assert.equal(input.headers['sec-websocket-protocol'], undefined);
      assert.equal(input.path, '/', 'the request path without its query');
      await waitFor(() => joins.inputs().some((j) => j.subscription_id === grp.id));
      assert.deepEqual(joins.inputs().find((j) => j.subscription_id === grp.id).context, {
        user: `u-${qtok}`,
        roles: ['reader'],
        n: 1,
      });
    });

    test('auth returning {unauthorized: true}: HTTP 401 at the handshake', async () => {
      await assert.rejects(
        RawClient.connect(`${authEnv.server.streamUrl}/?token=deny`),
        (e) => e.statusCode === 401,
      );
      await assert.rejects(
        RawClient.connect(authEnv.server.streamUrl, { protocols: ['Authorization', 'deny'] }),
        (e) => e.statusCode === 401,
      );
    });
  });

  describe(`${client} client: restart and reconnect`, () => {
    test('in_memory server restarted on the same ports: the client re-joins with the same subscriptionIds and converges on the new data by a full sync', async (t) => {
      const s = uid('mrestart');
      const g = 'g';
      const a = await startServer();
      t.after(() => a.stop());
      const wa = worker(null, a);
      await call(wa, 'stream::set', { stream_name: s, group_id: g, item_id: 'x1', data: { id: 'x1', v: 'old' } });
      await call(wa, 'stream::set', { stream_name: s, group_id: g, item_id: 'x2', data: { id: 'x2', v: 'old' } });

      const h = await open(t, a.streamUrl);
      const grp = track(h.stream.subscribeGroup(s, g));
      const i1 = track(h.stream.subscribeItem(s, g, 'x1'));
      const i2 = track(h.stream.subscribeItem(s, g, 'x2'));
      await synced(grp, i1, i2);
      assert.deepEqual(grp.state().map((v) => v.id), ['x1', 'x2']);
      const oldEpoch = framesFor(h, grp.id)[0].epoch;
      await wa.shutdown();

      await a.stop();
      const b = await startServer({ ports: [a.enginePort, a.streamPort] });
      t.after(() => b.stop());
      const wb = worker(t, b);
      // New data (x2 exists only on the old server; only a full sync can remove it).
      await call(wb, 'stream::set', { stream_name: s, group_id: g, item_id: 'x3', data: { id: 'x3', v: 'new' } });
      await call(wb, 'stream::set', { stream_name: s, group_id: g, item_id: 'x1', data: { id: 'x1', v: 'new' } });

      await waitFor(() => h.sockets.length >= 2 && h.isOpen(), { timeoutMs: 15000, message: 'the client did not reconnect' });
      await converges(grp, listOf(wb, s, g), { what: 'group after restart', timeoutMs: 10000 });
      await converges(i1, getOf(wb, s, g, 'x1'), { what: 'item x1 after restart', timeoutMs: 10000 });
      await converges(i2, getOf(wb, s, g, 'x2'), { what: 'item x2 after restart', timeoutMs: 10000 });
      assert.deepEqual(grp.state(), [{ id: 'x3', v: 'new' }, { id: 'x1', v: 'new' }]);
      assert.strictEqual(i2.state(), null);

      // Re-joins reuse the subscriptionIds and get syncs with a new epoch (clients.md §2.5.1-2, ext c).
      const resyncs = h.frames.filter((f) => f.event?.type === 'sync' && f.epoch !== oldEpoch);
      assert.deepEqual(new Set(resyncs.map((f) => f.subscriptionId)), new Set([grp.id, i1.id, i2.id]));
      // Live after the reconnect.
      await call(wb, 'stream::set', { stream_name: s, group_id: g, item_id: 'x2', data: { id: 'x2', v: 'again' } });
      await converges(i2, getOf(wb, s, g, 'x2'));
      await converges(grp, listOf(wb, s, g));
    });
  });
}
