// `stream` triggers (stream.md §2.3, §7.1, §7.4; worker-protocol.md §6.5–6.7; improvements g).
//
// Synchronisation: registrations are unacknowledged, so after registering we do one round trip on
// the same connection (clients.md §3). Negative checks ("X is not called") use a positive sentinel
// first; where the sentinel is in the same (trigger, group) they are exact, because one trigger's
// frames of one group are delivered in seq order (§7.1 Dispatch); otherwise a short assertNever
// window follows the sentinel.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  RawClient,
  assertNever,
  call,
  rawEngine,
  recorder,
  roundTrip,
  setupServer,
  uid,
  waitFor,
  worker,
} from './lib/server.mjs';

const env = setupServer();

const FRAME_KEYS = ['epoch', 'event', 'groupId', 'id', 'seq', 'streamName', 'timestamp', 'type'];

/** Exact trigger payload shape (§2.3): no subscriptionId, no reason. */
function assertFrame(p, { streamName, groupId, id, event }) {
  assert.deepEqual(Object.keys(p).sort(), FRAME_KEYS, `payload keys: ${JSON.stringify(p)}`);
  assert.equal(p.type, 'stream');
  assert.ok(Number.isInteger(p.timestamp), 'timestamp is an integer (ms)');
  assert.ok(Math.abs(p.timestamp - Date.now()) < 120_000, `timestamp ${p.timestamp} is Unix epoch milliseconds`);
  assert.equal(p.streamName, streamName);
  assert.equal(p.groupId, groupId);
  assert.strictEqual(p.id, id);
  assert.deepEqual(p.event, event);
  assert.ok(Number.isInteger(p.seq) && p.seq >= 1, `seq ${p.seq}`);
  assert.equal(typeof p.epoch, 'string');
  assert.ok(p.epoch.length > 0);
}

/** Consecutive frames of one group: seq +1 each, same epoch, strictly increasing timestamps (ext b, n). */
function assertSequence(frames) {
  for (let i = 1; i < frames.length; i++) {
    assert.equal(frames[i].seq, frames[i - 1].seq + 1, `seq gap between ${JSON.stringify(frames[i - 1])} and ${JSON.stringify(frames[i])}`);
    assert.equal(frames[i].epoch, frames[i - 1].epoch);
    assert.ok(frames[i].timestamp > frames[i - 1].timestamp, 'timestamps strictly increase within a group');
  }
}

/** A worker with a recording handler and a stream trigger bound to it. */
async function watch(t, config, { w, metadata, result } = {}) {
  const worker_ = w ?? worker(t, env.server);
  const fnId = `${uid('h')}::on-change`;
  const h = recorder(result);
  worker_.registerFunction(fnId, h);
  const trig = worker_.registerTrigger({ type: 'stream', function_id: fnId, config, ...(metadata ? { metadata } : {}) });
  await roundTrip(worker_);
  return { w: worker_, h, fnId, trig, inputs: () => h.inputs() };
}

describe('payload and firing', () => {
  test('set/update/delete/send fire with the exact §2.3 payload, in seq order', async (t) => {
    const s = uid('trg');
    const { w, inputs } = await watch(t, { stream_name: s });
    const k = (item_id) => ({ stream_name: s, group_id: 'g', item_id });
    await call(w, 'stream::set', { ...k('i1'), data: { id: 'i1', v: 1 } });
    await call(w, 'stream::set', { ...k('i1'), data: { id: 'i1', v: 2 } });
    await call(w, 'stream::update', { ...k('i1'), ops: [{ type: 'set', path: 'v', value: 3 }] });
    await call(w, 'stream::update', { ...k('i2'), ops: [] });
    await call(w, 'stream::send', { stream_name: s, group_id: 'g', type: 'ping', data: { x: 1 }, id: 'i1' });
    await call(w, 'stream::send', { stream_name: s, group_id: 'g', type: 'note', data: null });
    await call(w, 'stream::delete', k('zz')); // missing: no event, no seq consumed
    await call(w, 'stream::delete', k('i1'));
    await call(w, 'stream::set', { ...k('n'), data: null });
    await call(w, 'stream::set', { ...k('n'), data: 'was null' }); // existing null → update
    await call(w, 'stream::set', { ...k('n'), data: null });
    await call(w, 'stream::delete', k('n')); // removes a stored null → delete with data null
    const expected = [
      ['i1', { type: 'create', data: { id: 'i1', v: 1 } }],
      ['i1', { type: 'update', data: { id: 'i1', v: 2 } }],
      ['i1', { type: 'update', data: { id: 'i1', v: 3 } }],
      ['i2', { type: 'create', data: {} }],
      ['i1', { type: 'event', event: { type: 'ping', data: { x: 1 } } }],
      [null, { type: 'event', event: { type: 'note', data: null } }],
      ['i1', { type: 'delete', data: { id: 'i1', v: 3 } }],
      ['n', { type: 'create', data: null }],
      ['n', { type: 'update', data: 'was null' }],
      ['n', { type: 'update', data: null }],
      ['n', { type: 'delete', data: null }],
    ];
    await waitFor(() => inputs().length >= expected.length, {
      message: () => `expected ${expected.length} trigger calls, got ${JSON.stringify(inputs())}`,
    });
    const got = inputs();
    assert.equal(got.length, expected.length, JSON.stringify(got));
    for (const [i, [id, event]] of expected.entries()) assertFrame(got[i], { streamName: s, groupId: 'g', id, event });
    assertSequence(got);
  });

  test('delete of a missing item fires nothing and consumes no seq', async (t) => {
    const s = uid('trg-delmiss');
    const { w, inputs } = await watch(t, { stream_name: s });
    await call(w, 'stream::set', { stream_name: s, group_id: 'g', item_id: 'a', data: 1 });
    await call(w, 'stream::delete', { stream_name: s, group_id: 'g', item_id: 'missing' });
    await call(w, 'stream::delete', { stream_name: s, group_id: 'other', item_id: 'missing' });
    await call(w, 'stream::set', { stream_name: s, group_id: 'g', item_id: 'b', data: 2 }); // sentinel
    await waitFor(() => inputs().some((p) => p.id === 'b'));
    const got = inputs().filter((p) => p.groupId === 'g');
    assert.deepEqual(got.map((p) => [p.id, p.event.type]), [['a', 'create'], ['b', 'create']]);
    assertSequence(got);
    await assertNever(() => inputs().some((p) => p.groupId === 'other'), { message: 'delete of a missing item fired' });
  });

  test('reads never fire; a failed write fires nothing', async (t) => {
    const s = uid('trg-reads');
    const { w, inputs } = await watch(t, { stream_name: s });
    const key = { stream_name: s, group_id: 'g', item_id: 'i' };
    await call(w, 'stream::set', { ...key, data: { id: 'i' } });
    await call(w, 'stream::get', key);
    await call(w, 'stream::list', { stream_name: s, group_id: 'g' });
    await call(w, 'stream::list_groups', { stream_name: s });
    await call(w, 'stream::list_all', {});
    await w.trigger({ function_id: 'stream::update', payload: { ...key, ops: [{ type: 'bogus' }] } }).catch(() => {});
    await call(w, 'stream::set', { ...key, data: { id: 'i', last: true } }); // sentinel
    await waitFor(() => inputs().length >= 2);
    assert.deepEqual(inputs().map((p) => p.event.type), ['create', 'update']);
    assertSequence(inputs());
  });

  test('metadata of the trigger is passed to the handler', async (t) => {
    const s = uid('trg-meta');
    const { w, h } = await watch(t, { stream_name: s }, { metadata: { team: 'a', n: 1 } });
    await call(w, 'stream::set', { stream_name: s, group_id: 'g', item_id: 'i', data: 1 });
    await waitFor(() => h.calls.length === 1);
    assert.deepEqual(h.calls[0].metadata, { team: 'a', n: 1 });
  });

  test('a trigger fires for writes made by another worker', async (t) => {
    const s = uid('trg-other');
    const { inputs } = await watch(t, { stream_name: s });
    const writer = worker(t, env.server);
    await call(writer, 'stream::set', { stream_name: s, group_id: 'g', item_id: 'i', data: 'x' });
    await waitFor(() => inputs().length === 1);
    assertFrame(inputs()[0], { streamName: s, groupId: 'g', id: 'i', event: { type: 'create', data: 'x' } });
  });

  test('the trigger payload equals the frame a subscriber receives, minus subscriptionId (§2.3)', async (t) => {
    const s = uid('trg-vs-ws');
    const { w, inputs } = await watch(t, { stream_name: s });
    const sub = await RawClient.connect(env.server.streamUrl);
    t.after(() => sub.close());
    sub.send({ type: 'join', data: { subscriptionId: 'sub-1', streamName: s, groupId: 'g' } });
    await sub.waitMessage((m) => m?.event?.type === 'sync', { what: 'group sync' });
    await call(w, 'stream::set', { stream_name: s, group_id: 'g', item_id: 'i', data: { id: 'i' } });
    const frame = await sub.waitMessage((m) => m?.event?.type === 'create', { what: 'create frame' });
    await waitFor(() => inputs().length === 1);
    const { subscriptionId, ...body } = frame;
    assert.equal(subscriptionId, 'sub-1');
    assert.deepEqual(inputs()[0], body);
  });
});

describe('filters', () => {
  test('group_id and item_id filters; id null never matches an item filter; exact stream name', async (t) => {
    const s = uid('trg-filter');
    const w = worker(t, env.server);
    const all = await watch(t, { stream_name: s }, { w });
    const byGroup = await watch(t, { stream_name: s, group_id: 'g1' }, { w });
    const byItem = await watch(t, { stream_name: s, item_id: 'i1' }, { w });
    const both = await watch(t, { stream_name: s, group_id: 'g1', item_id: 'i1' }, { w });
    const emptyFilters = await watch(t, { stream_name: s, group_id: '', item_id: null, condition_function_id: '' }, { w });
    const otherStream = await watch(t, { stream_name: `${s}:sub` }, { w });
    const prefixStream = await watch(t, { stream_name: s.slice(0, -1) }, { w });

    await call(w, 'stream::set', { stream_name: s, group_id: 'g2', item_id: 'i1', data: 'a' });
    await call(w, 'stream::set', { stream_name: s, group_id: 'g1', item_id: 'i2', data: 'b' });
    await call(w, 'stream::send', { stream_name: s, group_id: 'g1', type: 't', data: 'c' });
    await call(w, 'stream::send', { stream_name: s, group_id: 'g2', type: 't', data: 'd', id: 'i1' });
    await call(w, 'stream::set', { stream_name: s, group_id: 'g1', item_id: 'i1', data: 'e' });

    const summary = (x) => x.inputs().map((p) => `${p.groupId}/${p.id}`).sort();
    await waitFor(() => all.inputs().length === 5 && byGroup.inputs().length >= 3 && byItem.inputs().length >= 3 && both.inputs().length >= 1 && emptyFilters.inputs().length >= 5, {
      message: () => JSON.stringify({ all: summary(all), byGroup: summary(byGroup), byItem: summary(byItem), both: summary(both), empty: summary(emptyFilters) }),
    });
    await assertNever(
      () => all.inputs().length > 5 || byGroup.inputs().length > 3 || byItem.inputs().length > 3 || both.inputs().length > 1 || emptyFilters.inputs().length > 5 || otherStream.inputs().length > 0 || prefixStream.inputs().length > 0,
      { message: 'a trigger fired for a frame its filter excludes' },
    );
    assert.deepEqual(summary(byGroup), ['g1/i1', 'g1/i2', 'g1/null']);
    assert.deepEqual(summary(byItem), ['g1/i1', 'g2/i1', 'g2/i1']);
    assert.deepEqual(summary(both), ['g1/i1']);
    assert.deepEqual(summary(emptyFilters), summary(all));
  });

  test('an item filter never matches a send without id (same group, exact ordering)', async (t) => {
    const s = uid('trg-item-null');
    const { w, inputs } = await watch(t, { stream_name: s, item_id: 'i1' });
    await call(w, 'stream::send', { stream_name: s, group_id: 'g', type: 'no-id', data: 1 });
    await call(w, 'stream::set', { stream_name: s, group_id: 'g', item_id: 'i2', data: 1 });
    await call(w, 'stream::set', { stream_name: s, group_id: 'g', item_id: 'i1', data: 'sentinel' });
    await waitFor(() => inputs().length >= 1);
    assert.deepEqual(inputs().map((p) => p.id), ['i1']);
  });
});

describe('condition_function_id (§7.1 Condition)', () => {
  test('false skips; true, other values and no result call the handler; an error skips', async (t) => {
    const s = uid('trg-cond');
    const w = worker(t, env.server);
    const condId = `${uid('cond')}::fn`;
    const answers = {
      skip: false,
      yes: 'yes',
      nothing: undefined,
      t: true,
      zero: 0,
      nul: null,
      obj: { allow: false },
      last: true,
    };
    const condCalls = [];
    w.registerFunction(condId, async (input, metadata) => {
      condCalls.push({ input, metadata });
      if (input.id === 'throws') throw new Error('condition failed');
      return answers[input.id];
    });
    const { inputs, h } = await watch(t, { stream_name: s, condition_function_id: condId }, { w, metadata: { m: 1 } });
    const order = ['skip', 'yes', 'throws', 'nothing', 't', 'zero', 'nul', 'obj', 'last'];
    for (const id of order) await call(w, 'stream::set', { stream_name: s, group_id: 'g', item_id: id, data: id });
    await waitFor(() => inputs().some((p) => p.id === 'last'), { message: () => JSON.stringify(inputs().map((p) => p.id)) });
    assert.deepEqual(inputs().map((p) => p.id), ['yes', 'nothing', 't', 'zero', 'nul', 'obj', 'last']);
    // the condition gets the same payload as the handler, without metadata
    assert.deepEqual(condCalls.map((c) => c.input.id).sort(), [...order].sort());
    const lastCond = condCalls.find((c) => c.input.id === 'last');
    assert.deepEqual(lastCond.input, inputs().at(-1));
    assert.equal(lastCond.metadata, undefined);
    assert.deepEqual(h.calls.at(-1).metadata, { m: 1 });
  });

  test('a condition function that does not exist skips the handler', async (t) => {
    const s = uid('trg-cond-missing');
    const w = worker(t, env.server);
    const guarded = await watch(t, { stream_name: s, condition_function_id: `${uid('absent')}::cond` }, { w });
    const open = await watch(t, { stream_name: s }, { w });
    await call(w, 'stream::set', { stream_name: s, group_id: 'g', item_id: 'i', data: 1 });
    await waitFor(() => open.inputs().length === 1);
    await assertNever(() => guarded.inputs().length > 0, { message: 'handler ran although its condition function is missing' });
  });
});

describe('registration lifecycle', () => {
  test('re-registering the same trigger id on another stream replaces the binding (improvements g)', async (t) => {
    const a = uid('trg-A');
    const b = uid('trg-B');
    const w = worker(t, env.server);
    const fnId = `${uid('h')}::fn`;
    const h = recorder();
    w.registerFunction(fnId, h);
    const catchAllA = await watch(t, { stream_name: a }, { w });
    const raw = await rawEngine(t, env.server);
    const T = crypto.randomUUID();
    raw.registerTrigger({ id: T, function_id: fnId, config: { stream_name: a }, metadata: { v: 1 } });
    raw.registerTrigger({ id: T, function_id: fnId, config: { stream_name: b }, metadata: { v: 2 } });
    const rt = await raw.call('stream::list_groups', { stream_name: '__rt__' });
    assert.equal(rt.error, undefined);
    await call(w, 'stream::set', { stream_name: a, group_id: 'g', item_id: 'i', data: 'A' });
    await call(w, 'stream::set', { stream_name: b, group_id: 'g', item_id: 'i', data: 'B' });
    await waitFor(() => h.calls.length >= 1 && catchAllA.inputs().length === 1);
    await assertNever(() => h.calls.length > 1, { message: () => `handler called ${h.calls.length} times: ${JSON.stringify(h.inputs())}` });
    assert.equal(h.calls[0].input.streamName, b);
    assert.deepEqual(h.calls[0].metadata, { v: 2 });
    // no triggerregistrationresult for successful registrations
    assert.equal(raw.messages.filter((m) => m.type === 'triggerregistrationresult').length, 0);
  });

  test('unregister() stops firing', async (t) => {
    const s = uid('trg-unreg');
    const w = worker(t, env.server);
    const other = await watch(t, { stream_name: s }, { w });
    const { h, trig } = await watch(t, { stream_name: s }, { w });
    await call(w, 'stream::set', { stream_name: s, group_id: 'g', item_id: 'i1', data: 1 });
    await waitFor(() => h.calls.length === 1);
    trig.unregister();
    await roundTrip(w);
    await call(w, 'stream::set', { stream_name: s, group_id: 'g', item_id: 'i2', data: 2 });
    await waitFor(() => other.inputs().length === 2);
    await assertNever(() => h.calls.length > 1, { message: 'unregistered trigger still fired' });
  });

  test('triggers of a worker are removed when it disconnects (worker-protocol §5.5)', async (t) => {
    const s = uid('trg-owner');
    const handlerWorker = worker(t, env.server);
    const fnId = `${uid('h')}::fn`;
    const h = recorder();
    handlerWorker.registerFunction(fnId, h);
    const control = await watch(t, { stream_name: s }, { w: handlerWorker });
    const owner = worker(null, env.server);
    owner.registerTrigger({ type: 'stream', function_id: fnId, config: { stream_name: s } });
    await roundTrip(owner);
    await call(handlerWorker, 'stream::set', { stream_name: s, group_id: 'g', item_id: 'before', data: 1 });
    await waitFor(() => h.calls.length === 1 && control.inputs().length === 1);
    await owner.shutdown();
    // The server notices the close asynchronously: write until a frame reaches the control
    // trigger without reaching h, then check that later frames do not reach h either.
    let n = 0;
    await waitFor(
      async () => {
        n += 1;
        const id = `probe-${n}`;
        await call(handlerWorker, 'stream::set', { stream_name: s, group_id: 'g', item_id: id, data: n });
        await waitFor(() => control.inputs().some((p) => p.id === id));
        // if h's trigger still exists it receives the same frame shortly after the control one
        const reached = await waitFor(() => h.inputs().some((p) => p.id === id), { timeoutMs: 500 }).then(
          () => true,
          () => false,
        );
        return !reached;
      },
      { timeoutMs: 5000, intervalMs: 50, message: 'trigger of a closed connection still fires' },
    );
    const count = h.calls.length;
    await call(handlerWorker, 'stream::set', { stream_name: s, group_id: 'g', item_id: 'after', data: 0 });
    await waitFor(() => control.inputs().some((p) => p.id === 'after'));
    await assertNever(() => h.calls.length > count, { message: 'trigger fired after its owner disconnected' });
  });

  test('the handler is resolved at fire time: a trigger may be registered before its function', async (t) => {
    const s = uid('trg-late');
    const w = worker(t, env.server);
    const fnId = `${uid('late')}::fn`;
    const control = await watch(t, { stream_name: s }, { w });
    w.registerTrigger({ type: 'stream', function_id: fnId, config: { stream_name: s } });
    await roundTrip(w);
    await call(w, 'stream::set', { stream_name: s, group_id: 'g', item_id: 'first', data: 1 }); // handler missing: failure, logged
    await waitFor(() => control.inputs().length === 1);
    const h = recorder();
    w.registerFunction(fnId, h);
    await roundTrip(w);
    await call(w, 'stream::set', { stream_name: s, group_id: 'g', item_id: 'second', data: 2 });
    await waitFor(() => h.calls.length >= 1);
    assert.deepEqual(h.inputs().map((p) => p.id), ['second']);
  });
});

describe('refused registrations (worker-protocol §6.5, §6.7; stream.md §7.1)', () => {
  async function expectRefusal(raw, reg, code) {
    const id = raw.registerTrigger(reg);
    const msg = await raw.waitMessage((m) => m?.type === 'triggerregistrationresult' && m.id === id, {
      what: `triggerregistrationresult for ${JSON.stringify(reg)}`,
    });
    assert.equal(msg.trigger_type, reg.trigger_type ?? 'stream');
    assert.equal(msg.function_id, reg.function_id);
    assert.equal(typeof msg.error, 'object');
    assert.equal(msg.error.code, code, JSON.stringify(msg));
    assert.equal(typeof msg.error.message, 'string');
    return msg;
  }

  test('a stream trigger with config {} is refused and stream::set still works', async (t) => {
    const raw = await rawEngine(t, env.server);
    const msg = await expectRefusal(raw, { function_id: 'x::y', config: {} }, 'trigger_registration_failed');
    assert.ok(msg.error.message.includes('stream_name'), msg.error.message);
    const s = uid('after-refusal');
    const r = await raw.call('stream::set', { stream_name: s, group_id: 'g', item_id: 'i', data: 1 });
    assert.deepEqual(r.result, { old_value: null, new_value: 1 });
    // the connection and other workers are unaffected
    const w = worker(t, env.server);
    assert.strictEqual(await call(w, 'stream::get', { stream_name: s, group_id: 'g', item_id: 'i' }), 1);
  });

  test('invalid stream configs are refused with trigger_registration_failed', async (t) => {
    const raw = await rawEngine(t, env.server);
    const s = uid('badcfg');
    const configs = [
      { config: null },
      { omitConfig: true },
      { config: 'orders' },
      { config: [s] },
      { config: { stream_name: '' } },
      { config: { stream_name: 5 } },
      { config: { stream_name: null } },
      { config: { stream_name: s, group_id: 5 } },
      { config: { stream_name: s, item_id: true } },
      { config: { stream_name: s, condition_function_id: { id: 'x' } } },
    ];
    for (const c of configs) await expectRefusal(raw, { function_id: 'f::g', ...c }, 'trigger_registration_failed');
    const r = await raw.call('stream::set', { stream_name: s, group_id: 'g', item_id: 'i', data: 1 });
    assert.equal(r.error, undefined);
  });

  test('a refused re-registration also removes the old binding of that id', async (t) => {
    const s = uid('trg-refuse-old');
    const w = worker(t, env.server);
    const fnId = `${uid('h')}::fn`;
    const h = recorder();
    w.registerFunction(fnId, h);
    const control = await watch(t, { stream_name: s }, { w });
    const raw = await rawEngine(t, env.server);
    const T = raw.registerTrigger({ function_id: fnId, config: { stream_name: s } });
    await raw.call('stream::list_groups', { stream_name: '__rt__' });
    await call(w, 'stream::set', { stream_name: s, group_id: 'g', item_id: 'one', data: 1 });
    await waitFor(() => h.calls.length === 1);
    await expectRefusal(raw, { id: T, function_id: fnId, config: {} }, 'trigger_registration_failed');
    await call(w, 'stream::set', { stream_name: s, group_id: 'g', item_id: 'two', data: 2 });
    await waitFor(() => control.inputs().length === 2);
    await assertNever(() => h.calls.length > 1, { message: 'old binding still active after a refused re-registration' });
  });

  test('unknown trigger types are refused with trigger_type_not_found', async (t) => {
    const raw = await rawEngine(t, env.server);
    for (const type of ['cron', 'STREAM', 'http', 'stream:JOIN']) {
      const msg = await expectRefusal(raw, { trigger_type: type, function_id: 'f::g', config: { stream_name: 's' } }, 'trigger_type_not_found');
      assert.ok(msg.error.message.includes(type), msg.error.message);
    }
    const r = await raw.call('stream::list_groups', { stream_name: 's' });
    assert.equal(r.error, undefined);
  });

  test('valid configs (unknown keys, null filters) are accepted silently and fire', async (t) => {
    const s = uid('trg-valid');
    const w = worker(t, env.server);
    const fnId = `${uid('h')}::fn`;
    const h = recorder();
    w.registerFunction(fnId, h);
    await roundTrip(w);
    const raw = await rawEngine(t, env.server);
    const id = raw.registerTrigger({
      function_id: fnId,
      config: { stream_name: s, group_id: null, item_id: null, condition_function_id: null, unknown_key: [1] },
    });
    await raw.call('stream::list_groups', { stream_name: '__rt__' });
    await call(w, 'stream::set', { stream_name: s, group_id: 'g', item_id: 'i', data: 1 });
    await waitFor(() => h.calls.length === 1);
    assert.equal(raw.messages.filter((m) => m.type === 'triggerregistrationresult' && m.id === id).length, 0);
  });
});

describe('dispatch (improvements g)', () => {
  test('a slow handler never delays writes; one trigger gets a group\'s frames one at a time in seq order', async (t) => {
    const s = uid('trg-slow');
    const w = worker(t, env.server);
    let release;
    const gate = new Promise((r) => {
      release = r;
    });
    let inFlight = 0;
    let maxInFlight = 0;
    const seen = [];
    const fnId = `${uid('slow')}::fn`;
    w.registerFunction(fnId, async (p) => {
      inFlight += 1;
      maxInFlight = Math.max(maxInFlight, inFlight);
      seen.push(p);
      await gate;
      await new Promise((r) => setImmediate(r));
      inFlight -= 1;
      return { ok: true };
    });
    w.registerTrigger({ type: 'stream', function_id: fnId, config: { stream_name: s, group_id: 'g' } });
    const fast = await watch(t, { stream_name: s, group_id: 'other' }, { w });
    for (let i = 0; i < 8; i++) {
      // each write completes although the handler is blocked on the first frame
      await call(w, 'stream::set', { stream_name: s, group_id: 'g', item_id: `i${i}`, data: i });
    }
    await waitFor(() => seen.length === 1);
    // another group is not blocked by the slow one
    await call(w, 'stream::set', { stream_name: s, group_id: 'other', item_id: 'x', data: 1 });
    await waitFor(() => fast.inputs().length === 1);
    await assertNever(() => seen.length > 1, { forMs: 200, message: 'next frame delivered before the previous call finished' });
    release();
    await waitFor(() => seen.length === 8 && inFlight === 0, { message: () => `delivered ${seen.length}/8` });
    assert.equal(maxInFlight, 1);
    assert.deepEqual(seen.map((p) => p.id), ['i0', 'i1', 'i2', 'i3', 'i4', 'i5', 'i6', 'i7']);
    assertSequence(seen);
  });

  test('a throwing handler does not stop later deliveries (no retry)', async (t) => {
    const s = uid('trg-throw');
    const w = worker(t, env.server);
    const seen = [];
    const fnId = `${uid('throw')}::fn`;
    w.registerFunction(fnId, async (p) => {
      seen.push(p.id);
      if (p.id === 'bad') throw new Error('handler failure');
      return null;
    });
    w.registerTrigger({ type: 'stream', function_id: fnId, config: { stream_name: s } });
    await roundTrip(w);
    await call(w, 'stream::set', { stream_name: s, group_id: 'g', item_id: 'bad', data: 1 });
    await call(w, 'stream::set', { stream_name: s, group_id: 'g', item_id: 'good', data: 2 });
    await waitFor(() => seen.includes('good'));
    assert.deepEqual(seen, ['bad', 'good']);
  });

  describe('with timeouts.trigger_ms = 300', () => {
    const short = setupServer({ stream: { timeouts: { trigger_ms: 300, condition_ms: 300 } } });

    test('a handler that never answers times out and the next frame is delivered', async (t) => {
      const s = uid('trg-timeout');
      const w = worker(t, short.server);
      const seen = [];
      const fnId = `${uid('hang')}::fn`;
      w.registerFunction(fnId, (p) => {
        seen.push({ id: p.id, at: Date.now() });
        return p.id === 'hang' ? new Promise(() => {}) : Promise.resolve(true);
      });
      w.registerTrigger({ type: 'stream', function_id: fnId, config: { stream_name: s } });
      await roundTrip(w);
      await call(w, 'stream::set', { stream_name: s, group_id: 'g', item_id: 'hang', data: 1 });
      await call(w, 'stream::set', { stream_name: s, group_id: 'g', item_id: 'next', data: 2 });
      await waitFor(() => seen.some((x) => x.id === 'next'), { timeoutMs: 5000, message: 'next frame never delivered after a hung handler' });
      const gap = seen[1].at - seen[0].at;
      assert.deepEqual(seen.map((x) => x.id), ['hang', 'next']);
      assert.ok(gap >= 250, `next frame delivered after ${gap} ms, before the 300 ms timeout`);
    });

    test('a condition that never answers times out and skips its handler', async (t) => {
      const s = uid('trg-cond-timeout');
      const w = worker(t, short.server);
      const condId = `${uid('cond')}::fn`;
      w.registerFunction(condId, (p) => (p.id === 'hang' ? new Promise(() => {}) : Promise.resolve(true)));
      const seen = [];
      const fnId = `${uid('h')}::fn`;
      w.registerFunction(fnId, async (p) => {
        seen.push(p.id);
      });
      w.registerTrigger({ type: 'stream', function_id: fnId, config: { stream_name: s, condition_function_id: condId } });
      await roundTrip(w);
      await call(w, 'stream::set', { stream_name: s, group_id: 'g', item_id: 'hang', data: 1 });
      await call(w, 'stream::set', { stream_name: s, group_id: 'g', item_id: 'next', data: 2 });
      await waitFor(() => seen.includes('next'), { timeoutMs: 5000 });
      assert.deepEqual(seen, ['next']);
    });
  });
});
