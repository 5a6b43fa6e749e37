// Raw engine-port protocol checks that the SDKs hide (worker-protocol.md §2, §3, §6, §7).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { RawClient, assertNever, call, callErr, rawEngine, roundTrip, setupServer, uid, waitFor, worker } from './lib/server.mjs';

const env = setupServer();

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('connection', () => {
  test('workerregistered is the first message, with string ids and no features (§6.1)', async (t) => {
    const c = await rawEngine(t, env.server);
    const first = await c.waitMessage(() => true, { what: 'first message' });
    assert.equal(first.type, 'workerregistered');
    assert.equal(typeof first.worker_id, 'string');
    assert.ok(first.worker_id.length > 0);
    assert.equal(typeof first.reattach_token, 'string');
    assert.ok(!('features' in first), 'features must never be sent');
    const other = await rawEngine(t, env.server);
    const second = await other.waitMessage((m) => m.type === 'workerregistered');
    assert.notEqual(second.worker_id, first.worker_id);
  });

  test('other paths answer HTTP 404 (§2)', async () => {
    await assert.rejects(RawClient.connect(env.server.engineUrl, { path: '/nope' }), (e) => e.statusCode === 404);
  });

  test('WebSocket Ping gets a Pong with the same payload; JSON ping gets {"type":"pong"}', async (t) => {
    const c = await rawEngine(t, env.server);
    assert.equal((await c.ping(Buffer.from('abc123'))).toString(), 'abc123');
    c.send({ type: 'ping' });
    await c.waitMessage((m) => m.type === 'pong', { what: 'JSON pong' });
  });

  test('undecodable and unknown messages are ignored; the connection stays open (§3 rule 6)', async (t) => {
    const c = await rawEngine(t, env.server);
    await c.waitMessage((m) => m.type === 'workerregistered');
    const garbage = [
      '',
      '   ',
      'not json',
      '[1,2,3]',
      '"just a string"',
      '{}',
      '{"type":"nosuchmessage","x":1}',
      '{"type":"InvokeFunction","invocation_id":"a","function_id":"stream::list_all","data":{}}',
      '{"type":"invokefunction","invocation_id":"b"}',
      '{"type":"invokefunction","invocation_id":"c","function_id":5}',
      '{"type":"registerfunction"}',
      '{"type":"invocationresult","invocation_id":"00000000-0000-4000-8000-000000000000","function_id":"x","result":1}',
      '{"type":"registertriggertype","id":"custom","description":"ignored"}',
      '{"type":"triggerregistrationresult","id":"x","trigger_type":"y","function_id":"z"}',
    ];
    for (const g of garbage) c.sendText(g);
    const r = await c.call('stream::list_groups', { stream_name: uid('after-garbage') });
    assert.deepEqual(r.result, []);
    assert.equal(c.closeInfo, null);
    // nothing was answered except workerregistered and our call (the ids a/b/c never get results)
    assert.deepEqual(c.messages.map((m) => m.type), ['workerregistered', 'invocationresult']);
  });

  test('a binary message holding JSON is processed like text; binary OTLP/MTRC/LOGS on / is discarded (§2)', async (t) => {
    const c = await rawEngine(t, env.server);
    c.sendBinary(Buffer.from('OTLP{"resourceSpans":[]}'));
    c.sendBinary(Buffer.from('MTRC{}'));
    c.sendBinary(Buffer.from('LOGS{}'));
    const id = crypto.randomUUID();
    c.sendBinary(Buffer.from(JSON.stringify({ type: 'invokefunction', invocation_id: id, function_id: 'stream::list_groups', data: { stream_name: 'x' } })));
    const r = await c.waitMessage((m) => m.invocation_id === id, { what: 'result of a binary call' });
    assert.deepEqual(r.result, []);
    assert.equal(c.raw.filter((m) => m.isBinary).length, 0, 'the server sends only text messages');
  });
});

describe('invocations', () => {
  test('invocationresult echoes invocation_id and function_id; "no result" omits the key (§6.10, §7.3)', async (t) => {
    const c = await rawEngine(t, env.server);
    const s = uid('raw-get');
    const miss = await c.call('stream::get', { stream_name: s, group_id: 'g', item_id: 'i' }, { invocation_id: 'opaque-id-not-a-uuid' });
    assert.equal(miss.invocation_id, 'opaque-id-not-a-uuid');
    assert.equal(miss.function_id, 'stream::get');
    assert.ok(!('result' in miss), `missing item must omit result: ${c.textOf(miss)}`);
    assert.ok(!('error' in miss));
    await c.call('stream::set', { stream_name: s, group_id: 'g', item_id: 'n', data: null });
    const hitNull = await c.call('stream::get', { stream_name: s, group_id: 'g', item_id: 'n' });
    assert.ok('result' in hitNull && hitNull.result === null, c.textOf(hitNull));
    const send = await c.call('stream::send', { stream_name: s, group_id: 'g', type: 't', data: 1 });
    assert.ok('result' in send && send.result === null, `stream::send answers "result": null: ${c.textOf(send)}`);
    const nf = await c.call('nope::nothing', { x: 1 });
    assert.equal(nf.function_id, 'nope::nothing');
    assert.equal(nf.error.code, 'function_not_found');
    assert.equal(typeof nf.error.message, 'string');
    assert.ok(!('result' in nf));
  });

  test('engine::workers::register accepts any metadata; a sync call returns {success: true} (§9)', async (t) => {
    const c = await rawEngine(t, env.server);
    const r = await c.call('engine::workers::register', {
      runtime: 'node',
      version: '0.22.1',
      name: 'raw',
      isolation: null,
      namespace: 'default',
      features: ['x'],
      telemetry: { language: 'en', project_name: null },
      unknown: { nested: true },
    });
    assert.deepEqual(r.result, { success: true });
    const r2 = await c.call('engine::workers::register', null);
    assert.equal(r2.error, undefined, c.textOf(r2));
  });

  test('missing data means null: stream::list_all without data is answered (§3 rule 5)', async (t) => {
    const c = await rawEngine(t, env.server);
    const r = await c.call('stream::list_all', undefined, { omitData: true });
    assert.equal(r.error, undefined, c.textOf(r));
    assert.ok(Array.isArray(r.result.stream));
    assert.equal(typeof r.result.count, 'number');
    const g = await c.call('stream::get', undefined, { omitData: true });
    assert.equal(g.error?.code, 'deserialization_error');
  });

  test('void calls are never answered, even with an invocation_id (§7.1)', async (t) => {
    const c = await rawEngine(t, env.server);
    const s = uid('raw-void');
    const voidId = crypto.randomUUID();
    c.send({ type: 'invokefunction', invocation_id: voidId, function_id: 'stream::set', action: { type: 'void' }, data: { stream_name: s, group_id: 'g', item_id: 'v', data: 1 } });
    const voidUnknown = crypto.randomUUID();
    c.send({ type: 'invokefunction', invocation_id: voidUnknown, function_id: 'nope::void', action: { type: 'void' }, data: {} });
    // no invocation_id and no action: run, send nothing back
    c.send({ type: 'invokefunction', function_id: 'stream::set', data: { stream_name: s, group_id: 'g', item_id: 'w', data: 2 } });
    // Rust 0.23 style: "invocation_id": null on a void call
    c.send({ type: 'invokefunction', invocation_id: null, function_id: 'stream::set', action: { type: 'void' }, data: { stream_name: s, group_id: 'g', item_id: 'x', data: 3 } });
    await waitFor(async () => (await c.call('stream::list', { stream_name: s, group_id: 'g' })).result?.length === 3);
    const r = await c.call('stream::list', { stream_name: s, group_id: 'g' });
    assert.deepEqual(r.result, [1, 2, 3]);
    await assertNever(() => c.messages.some((m) => m.invocation_id === voidId || m.invocation_id === voidUnknown), {
      forMs: 200,
      message: 'a void call was answered',
    });
  });

  test('enqueue with an invocation_id is answered with enqueue_error; an odd action with an id is a sync call', async (t) => {
    const c = await rawEngine(t, env.server);
    const s = uid('raw-enqueue');
    const r = await c.call('stream::set', { stream_name: s, group_id: 'g', item_id: 'i', data: 1 }, { action: { type: 'enqueue', queue: 'q' } });
    assert.equal(r.error?.code, 'enqueue_error');
    const odd = await c.call('stream::list_groups', { stream_name: s }, { action: { type: 'teleport' } });
    assert.deepEqual(odd.result, [], c.textOf(odd));
  });

  test('namespaces and unknown fields are ignored (§4)', async (t) => {
    const c = await rawEngine(t, env.server);
    const s = uid('raw-ns');
    const r = await c.call('stream::set', { stream_name: s, group_id: 'g', item_id: 'i', data: 1 }, {
      extra: { namespace: 'other', caller: 'x', observe_depth: 3, message_type: 'invokefunction', traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' },
    });
    assert.deepEqual(r.result, { old_value: null, new_value: 1 });
    const fn = `${uid('ns')}::fn`;
    c.send({ type: 'registerfunction', id: fn, namespace: 'elsewhere', description: 'd', request_format: {}, metadata: { a: 1 } });
    c.handlers.set(fn, async () => 'served');
    await c.call('stream::list_groups', { stream_name: '__rt__' }); // registration in effect
    const w = worker(t, env.server);
    assert.equal(await call(w, fn, {}), 'served');
  });

  test('server-sent invokefunction: fresh v4 UUID, function_id, data always present, metadata relayed (§6.9)', async (t) => {
    const callee = await rawEngine(t, env.server);
    const fn = `${uid('rawsrv')}::fn`;
    callee.serve(fn, async (data) => ({ got: data }));
    await callee.call('stream::list_groups', { stream_name: '__rt__' });
    const w = worker(t, env.server);
    assert.deepEqual(await call(w, fn, undefined), { got: null });
    assert.deepEqual(await call(w, fn, { a: 1 }, { metadata: { m: true } }), { got: { a: 1 } });
    const invs = callee.messages.filter((m) => m.type === 'invokefunction');
    assert.equal(invs.length, 2);
    for (const m of invs) {
      assert.match(m.invocation_id, UUID_V4);
      assert.equal(m.function_id, fn);
      assert.ok('data' in m, `data must be present: ${callee.textOf(m)}`);
      assert.ok(!('action' in m) && !('namespace' in m), callee.textOf(m));
    }
    assert.strictEqual(invs[0].data, null);
    assert.ok(!('metadata' in invs[0]) || invs[0].metadata === null);
    assert.deepEqual(invs[1].metadata, { m: true });
    assert.notEqual(invs[0].invocation_id, invs[1].invocation_id);
  });

  test('a callee answer with a malformed error becomes invocation_failed (§6.11)', async (t) => {
    const callee = await rawEngine(t, env.server);
    const fn = `${uid('malformed')}::fn`;
    callee.serve(fn, async () => {
      const e = new Error('x');
      e.body = 'just a string';
      throw e;
    });
    const fn2 = `${uid('custom-code')}::fn`;
    callee.serve(fn2, async () => {
      const e = new Error('x');
      e.body = { code: 'MY_CODE', message: 'custom failure' };
      throw e;
    });
    await callee.call('stream::list_groups', { stream_name: '__rt__' });
    const w = worker(t, env.server);
    const e1 = await callErr(w, fn, {});
    assert.equal(e1.code, 'invocation_failed');
    assert.ok(e1.message.includes('just a string'), e1.message);
    const e2 = await callErr(w, fn2, {});
    assert.equal(e2.code, 'MY_CODE', 'worker error codes are relayed unchanged');
    assert.equal(e2.message, 'custom failure');
  });

  test('registerfunction with `invocation` (HTTP-invoked) is ignored (§6.3)', async (t) => {
    const c = await rawEngine(t, env.server);
    const fn = `${uid('http')}::fn`;
    c.send({ type: 'registerfunction', id: fn, invocation: { url: 'http://127.0.0.1:9/x', method: 'POST' } });
    await c.call('stream::list_groups', { stream_name: '__rt__' });
    const w = worker(t, env.server);
    const e = await callErr(w, fn, {});
    assert.equal(e.code, 'function_not_found');
  });

  test('unregisterfunction only removes a function the sender owns (§6.4)', async (t) => {
    const owner = worker(t, env.server);
    const fn = `${uid('owned')}::fn`;
    owner.registerFunction(fn, async () => 'owner');
    await roundTrip(owner);
    const intruder = await rawEngine(t, env.server);
    intruder.send({ type: 'unregisterfunction', id: fn });
    await intruder.call('stream::list_groups', { stream_name: '__rt__' });
    assert.equal(await call(owner, fn, {}), 'owner');
  });
});
