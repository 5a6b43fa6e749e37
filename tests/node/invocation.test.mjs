// Worker-to-worker calls through the server (worker-protocol.md §5.4, §5.5, §7).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { describe, test } from 'node:test';
import { TriggerAction } from 'iii-sdk';
import { TESTS_DIR, call, callErr, metric, roundTrip, setupServer, trackChild, uid, waitFor, worker } from './lib/server.mjs';

const env = setupServer();

describe('relayed calls (§7.2)', () => {
  test('a value, a thrown error, nothing and null reach the caller unchanged', async (t) => {
    const a = worker(t, env.server);
    const ns = uid('math');
    a.registerFunction(`${ns}::add`, async ({ a: x, b: y }) => x + y);
    a.registerFunction(`${ns}::fail`, async () => {
      throw new Error('kaboom: division by zero');
    });
    a.registerFunction(`${ns}::void`, async () => {});
    a.registerFunction(`${ns}::null`, async () => null);
    a.registerFunction(`${ns}::object`, async (input) => ({ echo: input, list: [1, 'two', null] }));
    await roundTrip(a);

    const b = worker(t, env.server);
    assert.strictEqual(await call(b, `${ns}::add`, { a: 2, b: 3 }), 5);
    const e = await callErr(b, `${ns}::fail`, {});
    assert.equal(typeof e.code, 'string');
    // iii-sdk 0.22.1 answers a throwing handler with code invocation_failed; relayed unchanged
    assert.equal(e.code, 'invocation_failed');
    assert.ok(e.message.includes('kaboom: division by zero'), e.message);
    assert.equal(typeof e.error.stacktrace, 'string', 'stacktrace is relayed');
    assert.strictEqual(await call(b, `${ns}::void`, {}), undefined, 'no result → undefined');
    // A handler returning null makes the SDK send `"result": null`. worker-protocol §6.11 says an
    // explicit null and an absent result both mean "no value", while §7.2 relays results
    // "unchanged": the spec allows the caller to see either null or undefined here.
    const nul = await call(b, `${ns}::null`, {});
    assert.ok(nul === null || nul === undefined, `"result": null relayed as ${JSON.stringify(nul)}`);
    assert.deepEqual(await call(b, `${ns}::object`, { k: ['v'] }), { echo: { k: ['v'] }, list: [1, 'two', null] });
  });

  test('payload undefined arrives as null/absent; metadata is relayed', async (t) => {
    const a = worker(t, env.server);
    const fn = `${uid('meta')}::fn`;
    const seen = [];
    a.registerFunction(fn, async (input, metadata) => {
      seen.push({ input, metadata });
      return 'ok';
    });
    await roundTrip(a);
    const b = worker(t, env.server);
    assert.equal(await call(b, fn, undefined), 'ok');
    assert.equal(await call(b, fn, { x: 1 }, { metadata: { tenant: 't1' } }), 'ok');
    // server-sent invokefunction always carries `data`, null when there is no payload (§6.9)
    assert.strictEqual(seen[0].input, null);
    assert.deepEqual(seen[1].input, { x: 1 });
    assert.deepEqual(seen[1].metadata, { tenant: 't1' });
  });

  test('a worker can call its own function, and a handler can call the server while being called', async (t) => {
    const a = worker(t, env.server);
    const s = uid('nested');
    const fn = `${uid('chain')}::fn`;
    a.registerFunction(fn, async ({ value }) => {
      const r = await a.trigger({ function_id: 'stream::set', payload: { stream_name: s, group_id: 'g', item_id: 'i', data: value } });
      return { stored: r };
    });
    await roundTrip(a);
    assert.deepEqual(await call(a, fn, { value: 7 }), { stored: { old_value: null, new_value: 7 } });
    const b = worker(t, env.server);
    assert.deepEqual(await call(b, fn, { value: 8 }), { stored: { old_value: 7, new_value: 8 } });
  });

  test('many concurrent calls are correlated by invocation id', async (t) => {
    const a = worker(t, env.server);
    const fn = `${uid('conc')}::fn`;
    a.registerFunction(fn, async ({ n }) => {
      // answer in a scrambled order
      await new Promise((r) => setTimeout(r, (n * 7) % 23));
      return { n, sq: n * n };
    });
    await roundTrip(a);
    const b = worker(t, env.server);
    const results = await Promise.all(Array.from({ length: 40 }, (_, n) => call(b, fn, { n })));
    assert.deepEqual(results, Array.from({ length: 40 }, (_, n) => ({ n, sq: n * n })));
  });

  test('a void call is delivered to the callee and nothing is awaited', async (t) => {
    const a = worker(t, env.server);
    const fn = `${uid('void')}::fn`;
    const seen = [];
    a.registerFunction(fn, async (input) => {
      seen.push(input);
      return 'ignored';
    });
    await roundTrip(a);
    const b = worker(t, env.server);
    assert.strictEqual(await call(b, fn, { v: 1 }, { action: TriggerAction.Void() }), undefined);
    await waitFor(() => seen.length === 1);
    assert.deepEqual(seen[0], { v: 1 });
  });
});

describe('registration ownership (§5.4)', () => {
  test('unregistering a function makes it function_not_found', async (t) => {
    const a = worker(t, env.server);
    const fn = `${uid('unreg')}::fn`;
    const ref = a.registerFunction(fn, async () => 'here');
    await roundTrip(a);
    const b = worker(t, env.server);
    assert.equal(await call(b, fn, {}), 'here');
    ref.unregister();
    await roundTrip(a);
    const e = await callErr(b, fn, {});
    assert.equal(e.code, 'function_not_found');
  });

  test('a live owner keeps its function; a second connection is refused and takes over when the owner goes', async (t) => {
    const fn = `${uid('dup')}::fn`;
    const refusedBefore = await metric(env.server, 'iii_stream_registrations_refused_total');
    const first = worker(null, env.server);
    first.registerFunction(fn, async () => 'first');
    await roundTrip(first);
    const second = worker(t, env.server);
    second.registerFunction(fn, async () => 'second');
    await roundTrip(second);
    const caller = worker(t, env.server);
    for (let i = 0; i < 5; i++) assert.equal(await call(caller, fn, {}), 'first', 'the live owner keeps serving');
    assert.equal(await metric(env.server, 'iii_stream_registrations_refused_total'), refusedBefore + 1);
    assert.match(env.server.stderr(), /function is owned by another live connection; registration refused/);
    await first.shutdown();
    // The refused registration waited in line and now serves.
    await waitFor(async () => (await call(caller, fn, {}).catch(() => null)) === 'second', {
      message: 'the waiting connection did not take over',
    });
  });

  test('an SDK that reconnects while its old socket still looks alive reattaches and keeps serving', async (t) => {
    // A proxy between the worker and the server: cutting only the worker's side leaves the
    // server's side open, so the server still sees the old connection alive (a half-open socket).
    const upstreams = [];
    const downstreams = [];
    const proxy = net.createServer((down) => {
      const up = net.connect(env.server.enginePort, '127.0.0.1');
      upstreams.push(up);
      downstreams.push(down);
      down.pipe(up);
      up.pipe(down);
      for (const s of [up, down]) s.on('error', () => {});
    });
    await new Promise((r) => proxy.listen(0, '127.0.0.1', r));
    t.after(() => {
      for (const s of [...upstreams, ...downstreams]) s.destroy();
      proxy.close();
    });
    const fn = `${uid('reattach')}::fn`;
    const w = worker(t, { engineUrl: `ws://127.0.0.1:${proxy.address().port}` }, {
      reconnectionConfig: { initialDelayMs: 50, maxDelayMs: 200, backoffMultiplier: 1, jitterFactor: 0, maxRetries: -1 },
    });
    let served = 0;
    w.registerFunction(fn, async () => ++served);
    await roundTrip(w);
    const caller = worker(t, env.server);
    assert.equal(await call(caller, fn, {}), 1);

    downstreams[0].unpipe();
    upstreams[0].unpipe();
    downstreams[0].destroy();
    await waitFor(() => downstreams.length === 2, { message: 'the SDK did not reconnect' });
    // The SDK re-sent `reattach` and its registrations on the new socket: its function answers
    // there, although the server never saw the old socket close.
    await waitFor(async () => (await call(caller, fn, {}, { timeoutMs: 500 }).catch(() => null)) === 2, {
      message: 'the reconnected SDK does not serve its function',
    });
    assert.ok(!upstreams[0].destroyed, 'the old upstream was left open');
  });

  test('functions of a closed worker disappear (function_not_found)', async (t) => {
    const fn = `${uid('gone')}::fn`;
    const a = worker(null, env.server);
    a.registerFunction(fn, async () => 'alive');
    await roundTrip(a);
    const b = worker(t, env.server);
    assert.equal(await call(b, fn, {}), 'alive');
    await a.shutdown();
    await waitFor(
      async () => {
        try {
          await call(b, fn, {});
          return false;
        } catch (e) {
          return e.code === 'function_not_found';
        }
      },
      { message: 'function of a closed worker still routable' },
    );
  });
});

describe('callee disconnects mid-call (§5.5)', () => {
  test('the caller receives invocation_stopped within 1 s of kill -9', async (t) => {
    const fn = `${uid('slow')}::fn`;
    const child = trackChild(
      spawn(process.execPath, [path.join(TESTS_DIR, 'lib', 'child-worker.mjs'), env.server.engineUrl, fn], {
        cwd: TESTS_DIR,
        env: { ...process.env, OTEL_ENABLED: 'false' },
        stdio: ['ignore', 'pipe', 'pipe'],
      }),
    );
    t.after(() => child.kill('SIGKILL'));
    let out = '';
    let errOut = '';
    child.stdout.setEncoding('utf8').on('data', (d) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d) => (errOut += d));
    await waitFor(() => out.includes('READY') || child.exitCode !== null, {
      timeoutMs: 10000,
      message: () => `child worker not ready; stdout=${out} stderr=${errOut}`,
    });
    assert.ok(out.includes('READY'), `child worker exited early: ${errOut}`);

    const caller = worker(t, env.server, { invocationTimeoutMs: 20000 });
    const pending = call(caller, fn, { job: 1 }).then(
      (v) => ({ ok: true, v }),
      (e) => ({ ok: false, e }),
    );
    await waitFor(() => out.includes('CALLED'), { message: 'call never reached the child worker' });
    const killedAt = Date.now();
    child.kill('SIGKILL');
    const outcome = await pending;
    const elapsed = Date.now() - killedAt;
    assert.equal(outcome.ok, false, `call resolved: ${JSON.stringify(outcome.v)}`);
    assert.equal(outcome.e.code, 'invocation_stopped', outcome.e.message);
    assert.ok(elapsed < 1000, `rejection took ${elapsed} ms after the kill`);
    // its function is gone afterwards
    const e = await callErr(caller, fn, {});
    assert.equal(e.code, 'function_not_found');
  });
});
