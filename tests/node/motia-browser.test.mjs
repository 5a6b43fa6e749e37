// End-to-end tests with the published Motia browser stream client
// `@motiadev/stream-client-browser@0.17.14-beta.196` (clients.md §1.5, §2.5) against the stream
// port (stream.md §2, §8; improvements a, c, f, n, o), with iii-sdk@0.22.1 workers as writers.
//
// The browser client uses the global `WebSocket`. This file must run under plain
// `node --test tests/node/`, and Node 20 has no global WebSocket without --experimental-websocket,
// so:
// - the shared scenarios (lib/motia.mjs) run in this process over the platform WebSocket when
//   there is one (Node 22+), else over a browser-like wrapper of the `ws` class (text frames as
//   strings, binaryType 'blob', error events never thrown — as in browsers);
// - the tests under "platform WebSocket" run the client in a child process that has the real
//   platform WebSocket (undici; --experimental-websocket is added on Node 20), to check the
//   subprotocol handshake, sync and live frames with the same WebSocket implementation browsers'
//   semantics are modelled on.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import WsWebSocket from 'ws';
import { assertNever, call, delay, recorder, roundTrip, setupServer, uid, waitFor, worker } from './lib/server.mjs';
import { defineMotiaSuite, spawnProbe } from './lib/motia.mjs';

const hasPlatformWebSocket = typeof globalThis.WebSocket === 'function';
if (!hasPlatformWebSocket) {
  class BrowserLikeWebSocket extends WsWebSocket {
    constructor(url, protocols) {
      super(url, protocols);
      this.binaryType = 'blob';
      // Browsers report failures as 'error' events and never throw; `ws` throws an unhandled
      // 'error' event when nobody listens.
      this.on('error', () => {});
    }
  }
  globalThis.WebSocket = BrowserLikeWebSocket;
}
const { Stream } = await import('@motiadev/stream-client-browser');

defineMotiaSuite({
  client: 'browser',
  Stream,
  // The platform WebSocket (undici) sends one header value joined with ', '; `ws` joins with ','.
  headerSeparator: hasPlatformWebSocket ? ', ' : ',',
});

describe('browser client over the platform WebSocket (child process)', () => {
  const AUTH = 'motia-browser-e2e::auth';
  const env = setupServer({ stream: { auth_function: AUTH } });

  async function authWorker(t) {
    const w = worker(t, env.server);
    const auth = recorder((input) => {
      const token = (input.headers?.['sec-websocket-protocol'] ?? '').split(',').map((x) => x.trim())[1] ?? input.query_params?.token?.[0];
      return token === 'deny' ? { unauthorized: true } : { context: { token } };
    });
    w.registerFunction(AUTH, auth);
    const joins = recorder((input) => (input.group_id === 'secret' ? { unauthorized: true } : undefined));
    const leaves = recorder();
    const s = uid('mplat');
    w.registerFunction(`${s}::join`, joins);
    w.registerFunction(`${s}::leave`, leaves);
    w.registerTrigger({ type: 'stream:join', function_id: `${s}::join`, config: { stream_name: s } });
    w.registerTrigger({ type: 'stream:leave', function_id: `${s}::leave`, config: { stream_name: s } });
    await roundTrip(w);
    return { w, auth, joins, leaves, s };
  }

  test('subprotocol auth, group and item sync, live changes, custom events, join gate and leave on close', async (t) => {
    const { w, auth, joins, leaves, s } = await authWorker(t);
    const tok = uid('tok');
    await call(w, 'stream::set', { stream_name: s, group_id: 'g', item_id: 'a', data: { id: 'a', v: 1 } });
    await call(w, 'stream::set', { stream_name: s, group_id: 'secret', item_id: 'a', data: { id: 'a', v: 'hidden' } });
    const p = spawnProbe(
      t,
      {
        client: 'browser',
        url: `${env.server.streamUrl}/?x=1&x=2`,
        protocols: ['Authorization', tok],
        subs: [
          { kind: 'group', stream: s, group: 'g', events: ['ping'] },
          { kind: 'item', stream: s, group: 'g', id: 'a', events: ['ping'] },
          { kind: 'group', stream: s, group: 'secret', events: ['ping'] },
        ],
      },
      { platformWebSocket: true },
    );
    const opened = await p.waitLine((l) => l.ev === 'open', { what: 'the platform WebSocket did not open' });
    assert.equal(opened.protocol, 'Authorization', 'the server selected the first offered subprotocol (improvements o)');
    await p.waitLine((l) => l.ev === 'state' && l.sub === 0, { what: 'group sync' });
    await p.waitLine((l) => l.ev === 'state' && l.sub === 1, { what: 'item sync' });
    assert.deepEqual(p.lastState(0), [{ id: 'a', v: 1 }]);
    assert.deepEqual(p.lastState(1), { id: 'a', v: 1 });

    const input = auth.inputs().find((i) => (i.headers?.['sec-websocket-protocol'] ?? '').includes(tok));
    assert.ok(input, JSON.stringify(auth.inputs()));
    assert.equal(input.headers['sec-websocket-protocol'], `Authorization, ${tok}`, 'the platform WebSocket joins with ", "');
    assert.equal(input.path, '/');
    assert.deepEqual(input.query_params, { x: ['1', '2'] });
    assert.match(input.addr, /^127\.0\.0\.1:\d+$/);

    await delay(3);
    await call(w, 'stream::set', { stream_name: s, group_id: 'g', item_id: 'b', data: { id: 'b', v: 1 } });
    await call(w, 'stream::update', { stream_name: s, group_id: 'g', item_id: 'a', ops: [{ type: 'set', path: 'v', value: 2 }] });
    await call(w, 'stream::send', { stream_name: s, group_id: 'g', type: 'ping', data: { to: 'group' } });
    await call(w, 'stream::send', { stream_name: s, group_id: 'g', id: 'a', type: 'ping', data: { to: 'a' } });
    await call(w, 'stream::delete', { stream_name: s, group_id: 'g', item_id: 'b' });
    await call(w, 'stream::set', { stream_name: s, group_id: 'secret', item_id: 'a', data: { id: 'a', v: 'still hidden' } });
    const list = await call(w, 'stream::list', { stream_name: s, group_id: 'g' });
    await waitFor(() => JSON.stringify(p.lastState(0)) === JSON.stringify(list) && p.lastState(1)?.v === 2, {
      message: () => `states: ${JSON.stringify(p.lines.filter((l) => l.ev === 'state'))}`,
    });
    await waitFor(() => p.lines.filter((l) => l.ev === 'event' && l.sub === 1).length === 1);
    const events = (sub) => p.lines.filter((l) => l.ev === 'event' && l.sub === sub).map((l) => l.data);
    // One socket holds the group and the item subscription: the group's onEvent sees both copies
    // of the item's event, the item subscription drops the second (same timestamp) (§2.5.4, §2.5.6).
    assert.deepEqual(events(0), [{ to: 'group' }, { to: 'a' }, { to: 'a' }]);
    assert.deepEqual(events(1), [{ to: 'a' }]);
    // The refused group: an unauthorized frame on the wire, ignored by the client.
    const frames = p.lines.filter((l) => l.ev === 'frame').map((l) => l.frame);
    assert.ok(frames.some((f) => f.groupId === 'secret' && f.event?.type === 'unauthorized'), JSON.stringify(frames));
    assert.ok(!frames.some((f) => f.groupId === 'secret' && f.event?.type !== 'unauthorized'));
    assert.ok(!p.lines.some((l) => l.ev === 'state' && l.sub === 2));
    // Context from the auth function in the join payloads.
    await waitFor(() => joins.calls.length === 3);
    for (const j of joins.inputs()) assert.deepEqual(j.context, { token: tok });

    p.send({ cmd: 'close-sub', sub: 1 });
    await waitFor(() => leaves.calls.length === 1, { message: 'no leave after subscription.close()' });
    assert.equal(leaves.inputs()[0].id, 'a');
    p.send({ cmd: 'close' });
    await waitFor(() => leaves.calls.length === 2, { message: () => `leaves: ${JSON.stringify(leaves.inputs())}` });
    await assertNever(() => leaves.calls.length > 2, { forMs: 300, message: 'more than one leave per admitted subscription' });
    assert.deepEqual(
      leaves.inputs().map((l) => [l.group_id, l.id, l.context]),
      [
        ['g', 'a', { token: tok }],
        ['g', null, { token: tok }],
      ],
    );
  });

  test('a 401 handshake: the browser client never gets state and does not crash; it retries if the platform reports the close', async (t) => {
    const { auth, s } = await authWorker(t);
    const p = spawnProbe(
      t,
      {
        client: 'browser',
        url: env.server.streamUrl,
        protocols: ['Authorization', 'deny'],
        subs: [{ kind: 'group', stream: s, group: 'g' }],
      },
      { platformWebSocket: true },
    );
    const denied = () => auth.inputs().filter((i) => i.headers?.['sec-websocket-protocol']?.includes('deny')).length;
    await waitFor(() => denied() >= 1, { message: () => `auth not called; probe: ${JSON.stringify(p.lines)} ${p.stderr()}` });
    await delay(2500); // longer than the client's reconnect delay
    assert.equal(p.exitInfo, null, `the client process died: ${p.stderr()}`);
    assert.ok(!p.lines.some((l) => l.ev === 'open' || l.ev === 'state'), JSON.stringify(p.lines));
    // Browsers fire 'close' after a failed handshake, and the client reconnects 2 s later. Node 20's
    // experimental WebSocket (undici) fires only 'error' and stays CONNECTING, so no retry happens
    // there; both are client/platform behaviour, not the server's.
    if (p.lines.some((l) => l.ev === 'close' && l.n === 1)) {
      await waitFor(() => denied() >= 2, { timeoutMs: 5000, message: 'no retry after the close' });
    }
  });
});
