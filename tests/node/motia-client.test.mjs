// End-to-end tests with the published Motia Node stream client
// `@motiadev/stream-client-node@0.17.6-beta.187` (clients.md §1.4, §2.5) against the stream port
// (stream.md §2, §8; improvements a, c, f, n, o), with iii-sdk@0.22.1 workers as writers.
//
// The scenarios shared with the browser client live in lib/motia.mjs; this file adds the
// behaviour specific to the Node client, observed in a child process (lib/motia-probe.mjs)
// because the client kills its process on a failed handshake.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Stream } from '@motiadev/stream-client-node';
import { call, recorder, roundTrip, setupServer, uid, waitFor, worker } from './lib/server.mjs';
import { defineMotiaSuite, spawnProbe } from './lib/motia.mjs';

// `ws` joins the offered subprotocols with ',' (no space).
defineMotiaSuite({ client: 'node', Stream, guardErrors: true, headerSeparator: ',' });

describe('node client: unguarded process behaviour', () => {
  const AUTH = 'motia-node-e2e::auth';
  const env = setupServer({ stream: { auth_function: AUTH } });

  test('a 401 handshake answer kills the unguarded Node client process ("Unexpected server response: 401")', async (t) => {
    const w = worker(t, env.server);
    const auth = recorder((input) => (input.query_params?.token?.[0] === 'deny' ? { unauthorized: true } : {}));
    w.registerFunction(AUTH, auth);
    await roundTrip(w);
    const p = spawnProbe(t, {
      client: 'node',
      url: `${env.server.streamUrl}/?token=deny`,
      subs: [{ kind: 'group', stream: uid('m401'), group: 'g' }],
    });
    let timer;
    const exit = await Promise.race([p.exited, new Promise((r) => (timer = setTimeout(() => r('timeout'), 10000)))]);
    clearTimeout(timer);
    assert.notEqual(exit, 'timeout', 'the client process is still running');
    assert.notEqual(exit.code, 0);
    assert.match(p.stderr(), /Unexpected server response: 401/);
    assert.ok(!p.lines.some((l) => l.ev === 'open' || l.ev === 'state'), JSON.stringify(p.lines));
    assert.ok(auth.inputs().some((i) => i.query_params?.token?.[0] === 'deny'));
  });

  test('without a guard the client works normally when the handshake succeeds (sync, live, leave on exit)', async (t) => {
    const w = worker(t, env.server);
    w.registerFunction(AUTH, async () => ({ context: { via: 'probe' } }));
    const leaveFn = `${uid('l')}::leave`;
    const leaves = recorder();
    w.registerFunction(leaveFn, leaves);
    const s = uid('mprobe');
    w.registerTrigger({ type: 'stream:leave', function_id: leaveFn, config: { stream_name: s } });
    await roundTrip(w);
    await call(w, 'stream::set', { stream_name: s, group_id: 'g', item_id: 'a', data: { id: 'a', v: 1 } });
    const p = spawnProbe(t, {
      client: 'node',
      url: `${env.server.streamUrl}/?token=ok`,
      protocols: ['Authorization', 'ok'],
      subs: [{ kind: 'group', stream: s, group: 'g' }],
    });
    await p.waitLine((l) => l.ev === 'open', { what: 'open' });
    assert.equal(p.lines.find((l) => l.ev === 'open').protocol, 'Authorization');
    await p.waitLine((l) => l.ev === 'state' && l.sub === 0, { what: 'sync' });
    await call(w, 'stream::set', { stream_name: s, group_id: 'g', item_id: 'a', data: { id: 'a', v: 2 } });
    await waitFor(() => p.lastState(0)?.[0]?.v === 2, { message: () => JSON.stringify(p.lines) });
    p.send({ cmd: 'exit' });
    await p.exited;
    await waitFor(() => leaves.calls.length === 1, { message: 'no leave after the client process exited' });
    assert.deepEqual(leaves.inputs()[0].context, { via: 'probe' });
  });
});
