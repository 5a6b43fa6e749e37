// Error codes a worker can receive from built-ins and routing (stream.md §3.1,
// worker-protocol.md §7, §8). Assert codes and message prefixes only (clients.md §3).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { TriggerAction } from 'iii-sdk';
import { call, callErr, roundTrip, setupServer, uid, waitFor, worker } from './lib/server.mjs';

const env = setupServer();

const deserPrefix = (fn) => `Failed to deserialize input for ${fn}`;

describe('deserialization_error (§3.1)', () => {
  const cases = [
    ['stream::set', 'missing item_id', (s) => ({ stream_name: s, group_id: 'g', data: 1 })],
    ['stream::set', 'missing data (required, may be null)', (s) => ({ stream_name: s, group_id: 'g', item_id: 'i' })],
    ['stream::set', 'item_id: 5', (s) => ({ stream_name: s, group_id: 'g', item_id: 5, data: 1 })],
    ['stream::set', 'group_id: null', (s) => ({ stream_name: s, group_id: null, item_id: 'i', data: 1 })],
    ['stream::set', 'null payload', () => null],
    ['stream::set', 'array payload', (s) => [s, 'g', 'i', 1]],
    ['stream::get', 'item_id: 5', (s) => ({ stream_name: s, group_id: 'g', item_id: 5 })],
    ['stream::get', 'null payload', () => null],
    // §3.1: "The payload must be a JSON object" (only list_all also takes an array, §3.9)
    ['stream::get', 'array payload', (s) => [s, 'g', 'i']],
    ['stream::update', 'array payload', (s) => [s, 'g', 'i', []]],
    ['stream::get', 'missing stream_name', () => ({ group_id: 'g', item_id: 'i' })],
    ['stream::delete', 'item_id: true', (s) => ({ stream_name: s, group_id: 'g', item_id: true })],
    ['stream::delete', 'null payload', () => null],
    ['stream::update', 'missing ops', (s) => ({ stream_name: s, group_id: 'g', item_id: 'i' })],
    ['stream::update', 'null payload', () => null],
    ['stream::send', 'missing type', (s) => ({ stream_name: s, group_id: 'g', data: 1 })],
    ['stream::send', 'missing data', (s) => ({ stream_name: s, group_id: 'g', type: 't' })],
    ['stream::send', 'id: 7', (s) => ({ stream_name: s, group_id: 'g', type: 't', data: 1, id: 7 })],
    ['stream::send', 'null payload', () => null],
    ['stream::list', 'group_id: {}', (s) => ({ stream_name: s, group_id: {} })],
    ['stream::list', 'null payload', () => null],
    ['stream::list_groups', 'missing stream_name', () => ({})],
    ['stream::list_groups', 'stream_name: 1', () => ({ stream_name: 1 })],
    ['stream::list_groups', 'null payload', () => null],
    ['stream::list_all', 'a number', () => 42],
  ];
  for (const [fn, name, payload] of cases) {
    test(`${fn}: ${name}`, async (t) => {
      const w = worker(t, env.server);
      const s = uid('deser');
      const e = await callErr(w, fn, payload(s));
      assert.equal(e.code, 'deserialization_error');
      assert.ok(e.message.startsWith(deserPrefix(fn)), e.message);
      // nothing written
      assert.deepEqual(await call(w, 'stream::list_groups', { stream_name: s }), []);
    });
  }

  test('a failed set leaves the existing value untouched', async (t) => {
    const w = worker(t, env.server);
    const s = uid('deser-keep');
    await call(w, 'stream::set', { stream_name: s, group_id: 'g', item_id: 'i', data: 'kept' });
    const e = await callErr(w, 'stream::set', { stream_name: s, group_id: 'g', item_id: 'i' });
    assert.equal(e.code, 'deserialization_error');
    assert.strictEqual(await call(w, 'stream::get', { stream_name: s, group_id: 'g', item_id: 'i' }), 'kept');
  });

  test('payload undefined: the SDK omits `data`, which means null → deserialization_error for stream::get', async (t) => {
    const w = worker(t, env.server);
    const e = await callErr(w, 'stream::get', undefined);
    assert.equal(e.code, 'deserialization_error');
  });
});

describe('STREAM_INVALID_NAME (§3.1, improvements j)', () => {
  const cases = [
    ['stream::set', 'group_id', 'empty', (s) => ({ stream_name: s, group_id: '', item_id: 'i', data: 1 })],
    ['stream::set', 'stream_name', 'empty', () => ({ stream_name: '', group_id: 'g', item_id: 'i', data: 1 })],
    ['stream::set', 'item_id', 'empty', (s) => ({ stream_name: s, group_id: 'g', item_id: '', data: 1 })],
    ['stream::set', 'item_id', '4097 bytes', (s) => ({ stream_name: s, group_id: 'g', item_id: 'x'.repeat(4097), data: 1 })],
    ['stream::set', 'stream_name', '4097 bytes', () => ({ stream_name: 's'.repeat(4097), group_id: 'g', item_id: 'i', data: 1 })],
    ['stream::get', 'group_id', 'empty', (s) => ({ stream_name: s, group_id: '', item_id: 'i' })],
    ['stream::delete', 'item_id', 'empty', (s) => ({ stream_name: s, group_id: 'g', item_id: '' })],
    ['stream::update', 'group_id', 'empty', (s) => ({ stream_name: s, group_id: '', item_id: 'i', ops: [] })],
    ['stream::send', 'group_id', 'empty', (s) => ({ stream_name: s, group_id: '', type: 't', data: 1 })],
    ['stream::send', 'id', 'empty', (s) => ({ stream_name: s, group_id: 'g', type: 't', data: 1, id: '' })],
    ['stream::list', 'group_id', '4097 bytes', (s) => ({ stream_name: s, group_id: 'g'.repeat(4097) })],
    ['stream::list_groups', 'stream_name', 'empty', () => ({ stream_name: '' })],
  ];
  for (const [fn, field, how, payload] of cases) {
    test(`${fn}: ${how} ${field}`, async (t) => {
      const w = worker(t, env.server);
      const s = uid('badname');
      const e = await callErr(w, fn, payload(s));
      assert.equal(e.code, 'STREAM_INVALID_NAME');
      assert.ok(e.message.startsWith(`${field} must be a non-empty string`), e.message);
      assert.deepEqual(await call(w, 'stream::list_groups', { stream_name: s }), []);
    });
  }

  test('stream::send with id null is a send without id (not an invalid name)', async (t) => {
    const w = worker(t, env.server);
    assert.strictEqual(await call(w, 'stream::send', { stream_name: uid('send-null-id'), group_id: 'g', type: 't', data: 1, id: null }), null);
  });
});

describe('function_not_found (worker-protocol §7.2)', () => {
  test('unknown function', async (t) => {
    const w = worker(t, env.server);
    const id = `${uid('nope')}::fn`;
    const e = await callErr(w, id, { x: 1 });
    assert.equal(e.code, 'function_not_found');
    assert.ok(e.message.startsWith('Function'), e.message);
    assert.ok(e.message.includes(id), e.message);
  });

  test('stream::listGroups does not exist (the id is stream::list_groups)', async (t) => {
    const w = worker(t, env.server);
    const e = await callErr(w, 'stream::listGroups', { stream_name: 's' });
    assert.equal(e.code, 'function_not_found');
  });

  test('other engine:: functions are not provided', async (t) => {
    const w = worker(t, env.server);
    for (const fn of ['engine::workers::list', 'engine::functions::list', 'engine::channels::create']) {
      const e = await callErr(w, fn, {});
      assert.equal(e.code, 'function_not_found', fn);
    }
  });

  test('lookups are exact: a different case or a trailing space is not found', async (t) => {
    const w = worker(t, env.server);
    for (const fn of ['Stream::get', 'stream::get ', 'stream::GET']) {
      const e = await callErr(w, fn, { stream_name: 's', group_id: 'g', item_id: 'i' });
      assert.equal(e.code, 'function_not_found', JSON.stringify(fn));
    }
  });
});

describe('actions (worker-protocol §7.1)', () => {
  test('TriggerAction.Enqueue → enqueue_error and the target is not run', async (t) => {
    const w = worker(t, env.server);
    const s = uid('enqueue');
    // iii-sdk 0.22.1 has TriggerAction.Enqueue({queue}) → action {"type":"enqueue","queue":…}
    const e = await callErr(w, 'stream::set', { stream_name: s, group_id: 'g', item_id: 'i', data: 1 }, {
      action: TriggerAction.Enqueue({ queue: 'jobs' }),
    });
    assert.equal(e.code, 'enqueue_error');
    assert.strictEqual(await call(w, 'stream::get', { stream_name: s, group_id: 'g', item_id: 'i' }), undefined);
    assert.deepEqual(await call(w, 'stream::list_groups', { stream_name: s }), []);
  });

  test('enqueue to a worker function does not run it', async (t) => {
    const w = worker(t, env.server);
    const fn = `${uid('enq')}::fn`;
    let ran = 0;
    w.registerFunction(fn, async () => {
      ran += 1;
      return 'ran';
    });
    await roundTrip(w);
    const e = await callErr(w, fn, { a: 1 }, { action: TriggerAction.Enqueue({ queue: 'q' }) });
    assert.equal(e.code, 'enqueue_error');
    // a sync call afterwards is answered and is the only run
    assert.equal(await call(w, fn, {}), 'ran');
    assert.equal(ran, 1);
  });

  test('TriggerAction.Void: the call runs, nothing is awaited', async (t) => {
    const w = worker(t, env.server);
    const s = uid('void');
    const key = { stream_name: s, group_id: 'g', item_id: 'i' };
    assert.strictEqual(await call(w, 'stream::set', { ...key, data: 'v' }, { action: TriggerAction.Void() }), undefined);
    await waitFor(async () => (await call(w, 'stream::get', key)) === 'v', { message: 'void stream::set was not applied' });
  });

  test('a void call to an unknown function is dropped and the connection keeps working', async (t) => {
    const w = worker(t, env.server);
    await call(w, `${uid('void-unknown')}::fn`, {}, { action: TriggerAction.Void() });
    await roundTrip(w);
  });
});

describe('built-ins cannot be taken over (worker-protocol §6.3)', () => {
  test('a worker registering stream::get / stream::set does not replace the built-ins', async (t) => {
    const w = worker(t, env.server);
    let hijacked = 0;
    w.registerFunction('stream::get', async () => {
      hijacked += 1;
      return 'hijacked';
    });
    w.registerFunction('stream::set', async () => {
      hijacked += 1;
      return { old_value: 'hijacked', new_value: 'hijacked' };
    });
    w.registerFunction('engine::workers::register', async () => {
      hijacked += 1;
    });
    await roundTrip(w);
    const other = worker(t, env.server);
    const key = { stream_name: uid('hijack'), group_id: 'g', item_id: 'i' };
    assert.deepEqual(await call(other, 'stream::set', { ...key, data: 1 }), { old_value: null, new_value: 1 });
    assert.strictEqual(await call(other, 'stream::get', key), 1);
    assert.deepEqual(await call(w, 'stream::get', key), 1);
    assert.equal(hijacked, 0);
  });
});
