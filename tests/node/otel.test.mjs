// OpenTelemetry left ON (the SDK default): iii-sdk opens a second socket to <engine>/otel and
// streams binary OTLP/MTRC/LOGS messages (worker-protocol.md §11). Kept in its own file because
// the SDK's telemetry state is process-global (initOtel/shutdownOtel), so only one OTel-enabled
// worker may live in this process.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { RawClient, assertNever, call, roundTrip, setupServer, uid, waitFor, worker } from './lib/server.mjs';

const env = setupServer();

describe('/otel', () => {
  test('an iii-sdk worker with OpenTelemetry on connects to /otel, stays connected and works', async (t) => {
    const lines = [];
    const orig = { log: console.log, error: console.error, warn: console.warn };
    for (const k of Object.keys(orig)) {
      console[k] = (...args) => {
        const text = args.map((a) => (a instanceof Error ? a.message : String(a))).join(' ');
        if (text.startsWith('[OTel]') || text.startsWith('[iii]')) lines.push(`${k}: ${text}`);
        orig[k](...args);
      };
    }
    t.after(() => Object.assign(console, orig));

    const w = worker(t, env.server, { otel: true }); // also shut down by t.after if the test fails early
    const otelUrl = `${env.server.engineUrl}/otel`;
    await waitFor(() => lines.some((l) => l.includes(`[OTel] Connected to engine at ${otelUrl}`)), {
      message: () => `no OTel connection; logs: ${JSON.stringify(lines)}`,
    });

    // produce spans (handler executions), logs and stream traffic
    const fn = `${uid('otel')}::fn`;
    w.registerFunction(fn, async (input) => ({ doubled: input.n * 2 }));
    await roundTrip(w);
    const s = uid('otel-stream');
    for (let n = 0; n < 5; n++) {
      assert.deepEqual(await call(w, fn, { n }), { doubled: n * 2 });
      await call(w, 'stream::set', { stream_name: s, group_id: 'g', item_id: `i${n}`, data: n });
    }
    assert.deepEqual(await call(w, 'stream::list', { stream_name: s, group_id: 'g' }), [0, 1, 2, 3, 4]);

    // spans flush every 100 ms; a later round trip shows the server is still serving us and
    // the telemetry socket has not been dropped
    const mark = lines.length;
    await assertNever(
      () => lines.slice(mark).some((l) => /Disconnected from engine|WebSocket error|Failed to send/.test(l)),
      { forMs: 500, message: () => `telemetry socket trouble: ${JSON.stringify(lines)}` },
    );
    await roundTrip(w);
    await w.shutdown(); // flushes spans/metrics/logs over /otel, then closes it
    const bad = lines.filter((l) => /Disconnected from engine, will reconnect|WebSocket error|Failed to send|Connection failed/.test(l));
    assert.deepEqual(bad, []);
  });

  test('raw /otel: binary OTLP/MTRC/LOGS and text are discarded, nothing is sent, pings are answered', async (t) => {
    const c = await RawClient.connect(env.server.engineUrl, { path: '/otel' });
    t.after(() => c.close());
    for (const prefix of ['OTLP', 'MTRC', 'LOGS']) {
      c.sendBinary(Buffer.concat([Buffer.from(prefix, 'ascii'), Buffer.from(JSON.stringify({ resourceSpans: [] }))]));
    }
    c.sendBinary(Buffer.from([0, 1, 2, 3, 255]));
    c.sendText('not json at all');
    c.sendText(JSON.stringify({ type: 'invokefunction', invocation_id: crypto.randomUUID(), function_id: 'stream::list_all', data: {} }));
    c.sendText(JSON.stringify({ type: 'ping' }));
    const pong = await c.ping(Buffer.from('otel-ping'));
    assert.equal(pong.toString(), 'otel-ping');
    const pong2 = await c.ping(Buffer.from('second'));
    assert.equal(pong2.toString(), 'second');
    assert.equal(c.raw.length, 0, `/otel must never send messages: ${JSON.stringify(c.raw)}`);
    assert.equal(c.closeInfo, null);
  });
});
