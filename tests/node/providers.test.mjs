// Custom providers (per-stream overrides), stream.md §5 and §3.1.
// A provider worker registers `stream::<op>(<stream_name>)`; another worker calls the built-in
// `stream::<op>` on that stream and gets the provider's outcome.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { assertNever, call, callErr, recorder, roundTrip, setupServer, uid, waitFor, worker } from './lib/server.mjs';

const env = setupServer();

/** Register the given provider ops for `stream` on a fresh worker; returns {p, calls}. */
async function provide(t, stream, handlers, server = env.server) {
  const p = worker(t, server);
  const calls = {};
  for (const [op, handler] of Object.entries(handlers)) {
    calls[op] = [];
    p.registerFunction(`stream::${op}(${stream})`, async (input, metadata) => {
      calls[op].push(input);
      return handler(input, metadata);
    });
  }
  await roundTrip(p);
  return { p, calls };
}

/** A Map-backed provider with the createStream method names (no update). */
function memoryStream() {
  const groups = new Map();
  const group = (g) => {
    if (!groups.has(g)) groups.set(g, new Map());
    return groups.get(g);
  };
  return {
    groups,
    async get({ group_id, item_id }) {
      return groups.get(group_id)?.get(item_id);
    },
    async set({ group_id, item_id, data }) {
      const g = group(group_id);
      const old_value = g.has(item_id) ? g.get(item_id) : null;
      g.set(item_id, data);
      return { old_value, new_value: data };
    },
    async delete({ group_id, item_id }) {
      const g = groups.get(group_id);
      if (!g || !g.has(item_id)) return { old_value: null };
      const old_value = g.get(item_id);
      g.delete(item_id);
      if (g.size === 0) groups.delete(group_id);
      return { old_value };
    },
    async list({ group_id }) {
      return [...(groups.get(group_id)?.values() ?? [])];
    },
    async listGroups() {
      return [...groups.keys()].sort();
    },
  };
}

function pick(obj, keys) {
  return Object.fromEntries(keys.map((k) => [k, obj[k]]));
}

describe('provider-backed stream', () => {
  test('get/set/delete/list/list_groups are served by the provider (createStream path)', async (t) => {
    const s = uid('prov');
    const p = worker(t, env.server);
    const mem = memoryStream();
    const seen = [];
    const spy = (name, fn) => async (input) => {
      seen.push([name, input]);
      return fn(input);
    };
    const impl = {
      get: spy('get', mem.get),
      set: spy('set', mem.set),
      delete: spy('delete', mem.delete),
      list: spy('list', mem.list),
      listGroups: spy('list_groups', mem.listGroups),
    };
    // iii-sdk 0.22.1's createStream helper registers exactly these five functions (clients.md §2.1 item 8)
    if (typeof p.__helpers_create_stream === 'function') p.__helpers_create_stream(s, impl);
    else {
      p.registerFunction(`stream::get(${s})`, impl.get);
      p.registerFunction(`stream::set(${s})`, impl.set);
      p.registerFunction(`stream::delete(${s})`, impl.delete);
      p.registerFunction(`stream::list(${s})`, impl.list);
      p.registerFunction(`stream::list_groups(${s})`, impl.listGroups);
    }
    await roundTrip(p);

    const c = worker(t, env.server);
    const key = { stream_name: s, group_id: 'g', item_id: 'i' };
    assert.deepEqual(await call(c, 'stream::set', { ...key, data: { id: 'i', v: 1 } }), { old_value: null, new_value: { id: 'i', v: 1 } });
    assert.deepEqual(await call(c, 'stream::set', { ...key, data: { id: 'i', v: 2 } }), {
      old_value: { id: 'i', v: 1 },
      new_value: { id: 'i', v: 2 },
    });
    assert.deepEqual(await call(c, 'stream::get', key), { id: 'i', v: 2 });
    assert.strictEqual(await call(c, 'stream::get', { ...key, item_id: 'missing' }), undefined);
    assert.deepEqual(await call(c, 'stream::list', { stream_name: s, group_id: 'g' }), [{ id: 'i', v: 2 }]);
    assert.deepEqual(await call(c, 'stream::list_groups', { stream_name: s }), ['g']);
    // data living only in a provider is not listed by list_all
    const all = await call(c, 'stream::list_all', {});
    assert.equal(all.stream.find((e) => e.id === s), undefined);
    assert.deepEqual(await call(c, 'stream::delete', key), { old_value: { id: 'i', v: 2 } });
    assert.deepEqual(await call(c, 'stream::delete', key), { old_value: null });
    assert.strictEqual(await call(c, 'stream::get', key), undefined);

    // the provider receives the decoded input object (documented fields; extras MAY be dropped)
    const first = (name) => seen.find(([n]) => n === name)[1];
    assert.deepEqual(pick(first('set'), ['stream_name', 'group_id', 'item_id', 'data']), { ...key, data: { id: 'i', v: 1 } });
    assert.deepEqual(pick(first('get'), ['stream_name', 'group_id', 'item_id']), key);
    assert.deepEqual(pick(first('delete'), ['stream_name', 'group_id', 'item_id']), key);
    assert.deepEqual(pick(first('list'), ['stream_name', 'group_id']), { stream_name: s, group_id: 'g' });
    assert.deepEqual(pick(first('list_groups'), ['stream_name']), { stream_name: s });
  });

  test('get, list and list_groups outcomes pass through unchanged', async (t) => {
    const s = uid('prov-pass');
    const answers = { get: { weird: [1, { x: null }] }, list: { not: 'an array' }, list_groups: ['z', 'a', 'z'] };
    await provide(t, s, {
      get: ({ item_id }) => {
        if (item_id === 'null') return null;
        if (item_id === 'none') return undefined;
        if (item_id === 'throw') throw new Error('get boom');
        if (item_id === 'scalar') return 42;
        return answers.get;
      },
      list: ({ group_id }) => (group_id === 'throw' ? Promise.reject(new Error('list boom')) : answers.list),
      list_groups: () => answers.list_groups,
    });
    const c = worker(t, env.server);
    const key = (item_id) => ({ stream_name: s, group_id: 'g', item_id });
    assert.deepEqual(await call(c, 'stream::get', key('obj')), answers.get);
    assert.strictEqual(await call(c, 'stream::get', key('scalar')), 42);
    assert.strictEqual(await call(c, 'stream::get', key('none')), undefined);
    // A Node provider returning null sends `"result": null`. §5 passes the outcome through
    // unchanged, but worker-protocol §6.11 says explicit null and absent both mean "no value",
    // so the caller may see null or undefined.
    const nul = await call(c, 'stream::get', key('null'));
    assert.ok(nul === null || nul === undefined, `provider null passed through as ${JSON.stringify(nul)}`);
    const e = await callErr(c, 'stream::get', key('throw'));
    assert.equal(e.code, 'invocation_failed');
    assert.ok(e.message.includes('get boom'), e.message);
    assert.deepEqual(await call(c, 'stream::list', { stream_name: s, group_id: 'g' }), answers.list);
    const le = await callErr(c, 'stream::list', { stream_name: s, group_id: 'throw' });
    assert.equal(le.code, 'invocation_failed');
    assert.ok(le.message.includes('list boom'), le.message);
    assert.deepEqual(await call(c, 'stream::list_groups', { stream_name: s }), answers.list_groups);
  });

  test('set and delete results are re-encoded in the standard shape', async (t) => {
    const s = uid('prov-shape');
    await provide(t, s, {
      set: ({ item_id, data }) => {
        if (item_id === 'no-old') return { new_value: data };
        if (item_id === 'extra') return { old_value: 1, new_value: 2, extra: 'dropped', seq: 9 };
        return { old_value: null, new_value: null };
      },
      delete: ({ item_id }) => {
        if (item_id === 'empty') return {};
        return { old_value: 'x', extra: true };
      },
    });
    const c = worker(t, env.server);
    const key = (item_id) => ({ stream_name: s, group_id: 'g', item_id });
    assert.deepEqual(await call(c, 'stream::set', { ...key('no-old'), data: 5 }), { old_value: null, new_value: 5 });
    assert.deepEqual(await call(c, 'stream::set', { ...key('extra'), data: 5 }), { old_value: 1, new_value: 2 });
    assert.deepEqual(await call(c, 'stream::set', { ...key('nulls'), data: 5 }), { old_value: null, new_value: null });
    assert.deepEqual(await call(c, 'stream::delete', key('empty')), { old_value: null });
    assert.deepEqual(await call(c, 'stream::delete', key('other')), { old_value: 'x' });
  });

  test('a provider is bound to the exact stream name', async (t) => {
    const s = uid('prov-exact');
    const { calls } = await provide(t, s, { get: () => 'from provider' });
    const c = worker(t, env.server);
    for (const other of [`${s}x`, `${s}:sub`, s.slice(0, -1), s.toUpperCase()]) {
      assert.strictEqual(await call(c, 'stream::get', { stream_name: other, group_id: 'g', item_id: 'i' }), undefined, other);
    }
    assert.equal(await call(c, 'stream::get', { stream_name: s, group_id: 'g', item_id: 'i' }), 'from provider');
    assert.equal(calls.get.length, 1);
  });

  test('input is decoded and names validated before the provider is consulted (§3.1)', async (t) => {
    const s = uid('prov-validate');
    const { calls } = await provide(t, s, {
      set: ({ data }) => ({ old_value: null, new_value: data }),
      get: () => 'x',
    });
    const c = worker(t, env.server);
    let e = await callErr(c, 'stream::set', { stream_name: s, group_id: '', item_id: 'i', data: 1 });
    assert.equal(e.code, 'STREAM_INVALID_NAME');
    e = await callErr(c, 'stream::set', { stream_name: s, group_id: 'g', item_id: 5, data: 1 });
    assert.equal(e.code, 'deserialization_error');
    e = await callErr(c, 'stream::get', { stream_name: s, group_id: 'g', item_id: 'x'.repeat(4097) });
    assert.equal(e.code, 'STREAM_INVALID_NAME');
    assert.equal(calls.set.length, 0);
    assert.equal(calls.get.length, 0);
  });

  test('when the provider worker disconnects, the stream falls back to the adapter', async (t) => {
    const s = uid('prov-gone');
    const c = worker(t, env.server);
    const key = { stream_name: s, group_id: 'g', item_id: 'i' };
    await call(c, 'stream::set', { ...key, data: 'adapter' });
    const p = worker(null, env.server);
    p.registerFunction(`stream::get(${s})`, async () => 'provider');
    await roundTrip(p);
    assert.equal(await call(c, 'stream::get', key), 'provider');
    await p.shutdown();
    await waitFor(async () => (await call(c, 'stream::get', key)) === 'adapter', {
      message: 'stream::get still routed to a disconnected provider',
    });
  });
});

describe('provider failures (§5)', () => {
  const ops = {
    set: { code: 'STREAM_SET_ERROR', verb: 'set', payload: (s) => ({ stream_name: s, group_id: 'g', item_id: 'i', data: 1 }) },
    delete: { code: 'STREAM_DELETE_ERROR', verb: 'delete', payload: (s) => ({ stream_name: s, group_id: 'g', item_id: 'i' }) },
    update: {
      code: 'STREAM_UPDATE_ERROR',
      verb: 'update',
      payload: (s) => ({ stream_name: s, group_id: 'g', item_id: 'i', ops: [{ type: 'set', path: 'a', value: 1 }] }),
    },
  };
  for (const [op, { code, verb, payload }] of Object.entries(ops)) {
    test(`${op}: garbage → JSON_ERROR; no result → ${code}; throw → ${code}; nothing emitted`, async (t) => {
      const s = uid(`prov-fail-${op}`);
      await provide(t, s, {
        [op]: ({ group_id }) => {
          if (group_id === 'garbage') return 'this is not an object';
          if (group_id === 'number') return 17;
          if (group_id === 'missing-new') return { old_value: 1 };
          if (group_id === 'bad-errors') return { new_value: 1, errors: 'not an array' };
          if (group_id === 'none') return undefined;
          if (group_id === 'throw') throw new Error(`${op} provider exploded`);
          // sentinel
          return op === 'delete' ? { old_value: 'gone' } : { old_value: null, new_value: 'ok' };
        },
      });
      const c = worker(t, env.server);
      const h = recorder();
      const fnId = `${uid('h')}::fn`;
      c.registerFunction(fnId, h);
      c.registerTrigger({ type: 'stream', function_id: fnId, config: { stream_name: s } });
      await roundTrip(c);
      const inGroup = (g) => ({ ...payload(s), group_id: g });

      for (const g of ['garbage', 'number']) {
        const e = await callErr(c, `stream::${op}`, inGroup(g));
        assert.equal(e.code, 'JSON_ERROR', `${g}: ${e.message}`);
        assert.ok(e.message.startsWith('Failed to convert result to value'), e.message);
      }
      if (op !== 'delete') {
        // new_value is required in the set/update result shape
        const e = await callErr(c, `stream::${op}`, inGroup('missing-new'));
        assert.equal(e.code, 'JSON_ERROR', e.message);
      }
      if (op === 'update') {
        const e = await callErr(c, `stream::${op}`, inGroup('bad-errors'));
        assert.equal(e.code, 'JSON_ERROR', `errors must be an array: ${e.message}`);
      }
      const none = await callErr(c, `stream::${op}`, inGroup('none'));
      assert.equal(none.code, code);
      assert.ok(none.message.startsWith(`Failed to ${verb} value: Function returned no result`), none.message);
      const thrown = await callErr(c, `stream::${op}`, inGroup('throw'));
      assert.equal(thrown.code, code);
      assert.ok(thrown.message.startsWith(`Failed to ${verb} value: Failed to invoke function: `), thrown.message);
      assert.ok(thrown.message.includes('invocation_failed'), thrown.message);
      assert.ok(thrown.message.includes(`${op} provider exploded`), thrown.message);

      // a successful provider write afterwards is the first and only event
      const ok = await call(c, `stream::${op}`, inGroup('sentinel'));
      assert.deepEqual(ok, op === 'delete' ? { old_value: 'gone' } : { old_value: null, new_value: 'ok' });
      await waitFor(() => h.calls.length >= 1);
      await assertNever(() => h.calls.length > 1, { message: () => `unexpected events: ${JSON.stringify(h.inputs())}` });
      assert.equal(h.calls[0].input.groupId, 'sentinel');
    });
  }
});

describe('stream::update and providers', () => {
  test('update goes to the adapter when no stream::update(<name>) is registered', async (t) => {
    const s = uid('prov-upd-adapter');
    const { calls } = await provide(t, s, {
      get: () => 'provider value',
      set: ({ data }) => ({ old_value: null, new_value: data }),
      delete: () => ({ old_value: null }),
      list: () => [],
      list_groups: () => [],
    });
    const c = worker(t, env.server);
    const key = { stream_name: s, group_id: 'g', item_id: 'i' };
    assert.deepEqual(await call(c, 'stream::update', { ...key, ops: [{ type: 'set', path: 'a', value: 1 }] }), {
      old_value: null,
      new_value: { a: 1 },
    });
    assert.deepEqual(await call(c, 'stream::update', { ...key, ops: [{ type: 'increment', path: 'a', by: 1 }] }), {
      old_value: { a: 1 },
      new_value: { a: 2 },
    });
    assert.equal(calls.set.length, 0);
    assert.equal(calls.get.length, 0);
    // the value lives in the adapter: list_all (no provider) shows it, get (provider) does not
    const all = await call(c, 'stream::list_all', {});
    assert.deepEqual(all.stream.find((e) => e.id === s), { id: s, groups: ['g'] });
    assert.equal(await call(c, 'stream::get', key), 'provider value');
  });

  test('a registered stream::update(<name>) receives the ops and its result is re-encoded', async (t) => {
    const s = uid('prov-upd');
    const { calls } = await provide(t, s, {
      update: ({ item_id }) => {
        if (item_id === 'plain') return { old_value: 'o', new_value: 'n', errors: [] };
        if (item_id === 'errs') return { old_value: null, new_value: { a: 1 }, errors: [{ op_index: 0, code: 'custom.code', message: 'nope' }] };
        return { new_value: 7 };
      },
    });
    const c = worker(t, env.server);
    const ops = [{ type: 'set', path: 'a', value: 1 }, { type: 'increment', path: 'n', by: 2 }];
    const plain = await call(c, 'stream::update', { stream_name: s, group_id: 'g', item_id: 'plain', ops });
    assert.deepEqual(plain, { old_value: 'o', new_value: 'n' });
    const errs = await call(c, 'stream::update', { stream_name: s, group_id: 'g', item_id: 'errs', ops });
    assert.deepEqual(errs.new_value, { a: 1 });
    assert.deepEqual(errs.old_value, null);
    assert.deepEqual(errs.errors.map(({ op_index, code, message }) => ({ op_index, code, message })), [
      { op_index: 0, code: 'custom.code', message: 'nope' },
    ]);
    assert.deepEqual(await call(c, 'stream::update', { stream_name: s, group_id: 'g', item_id: 'min', ops: [] }), {
      old_value: null,
      new_value: 7,
    });
    const input = calls.update[0];
    assert.deepEqual(pick(input, ['stream_name', 'group_id', 'item_id']), { stream_name: s, group_id: 'g', item_id: 'plain' });
    assert.deepEqual(input.ops, ops);
  });

  test('a malformed op is rejected before the update provider is called', async (t) => {
    const s = uid('prov-upd-bad');
    const { calls } = await provide(t, s, { update: () => ({ new_value: 1 }) });
    const c = worker(t, env.server);
    const e = await callErr(c, 'stream::update', { stream_name: s, group_id: 'g', item_id: 'i', ops: [{ type: 'Set', path: 'a' }] });
    assert.equal(e.code, 'deserialization_error');
    assert.equal(calls.update.length, 0);
  });
});

describe('triggers on provider-backed writes (§5 Success)', () => {
  test('events are computed from the provider result', async (t) => {
    const s = uid('prov-trg');
    await provide(t, s, {
      // the provider decides the outcome; the event must follow its result, not the input
      set: ({ item_id, data }) =>
        item_id === 'existing' ? { old_value: { was: true }, new_value: { ...data, stamped: 1 } } : { new_value: { ...data, stamped: 1 } },
      delete: ({ item_id }) => (item_id === 'present' ? { old_value: { id: 'present' } } : { old_value: null }),
      update: () => ({ old_value: { n: 1 }, new_value: { n: 2 } }),
    });
    const c = worker(t, env.server);
    const h = recorder();
    const fnId = `${uid('h')}::fn`;
    c.registerFunction(fnId, h);
    c.registerTrigger({ type: 'stream', function_id: fnId, config: { stream_name: s } });
    await roundTrip(c);
    const k = (item_id) => ({ stream_name: s, group_id: 'g', item_id });
    await call(c, 'stream::set', { ...k('new'), data: { id: 'new' } });
    await call(c, 'stream::set', { ...k('existing'), data: { id: 'existing' } });
    await call(c, 'stream::update', { ...k('u'), ops: [] });
    await call(c, 'stream::delete', k('absent')); // provider says nothing was removed: no event
    await call(c, 'stream::delete', k('present'));
    await call(c, 'stream::send', { stream_name: s, group_id: 'g', type: 'custom', data: 1, id: 'x' }); // send has no provider
    await waitFor(() => h.calls.length >= 5, { message: () => JSON.stringify(h.inputs()) });
    await assertNever(() => h.calls.length > 5, { forMs: 200, message: () => JSON.stringify(h.inputs()) });
    const got = h.inputs();
    assert.deepEqual(
      got.map((p) => [p.id, p.event]),
      [
        ['new', { type: 'create', data: { id: 'new', stamped: 1 } }],
        ['existing', { type: 'update', data: { id: 'existing', stamped: 1 } }],
        ['u', { type: 'update', data: { n: 2 } }],
        ['present', { type: 'delete', data: { id: 'present' } }],
        ['x', { type: 'event', event: { type: 'custom', data: 1 } }],
      ],
    );
    for (let i = 1; i < got.length; i++) assert.equal(got[i].seq, got[i - 1].seq + 1);
  });
});

describe('provider timeouts (timeouts.provider_ms = 300)', () => {
  const short = setupServer({ stream: { timeouts: { provider_ms: 300 } } });

  test('a provider that never answers fails the call', async (t) => {
    const s = uid('prov-timeout');
    const p = worker(t, short.server);
    const never = () => new Promise(() => {});
    p.registerFunction(`stream::set(${s})`, never);
    p.registerFunction(`stream::get(${s})`, never);
    await roundTrip(p);
    const c = worker(t, short.server, { invocationTimeoutMs: 5000 });
    const started = Date.now();
    const e = await callErr(c, 'stream::set', { stream_name: s, group_id: 'g', item_id: 'i', data: 1 });
    assert.equal(e.code, 'STREAM_SET_ERROR', e.message);
    assert.ok(e.message.startsWith('Failed to set value: Failed to invoke function: '), e.message);
    assert.ok(Date.now() - started < 4000);
    const g = await callErr(c, 'stream::get', { stream_name: s, group_id: 'g', item_id: 'i' });
    assert.equal(g.code, 'invocation_timeout', g.message);
  });
});
