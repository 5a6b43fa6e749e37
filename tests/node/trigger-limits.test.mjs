// Bounded `stream` trigger dispatch (improvements g, stream.md §7.1 Dispatch, §9.3 `triggers`):
// at most `max_concurrency` handler calls in flight across triggers and groups, at most
// `max_pending_per_trigger` frames queued per trigger (the rest dropped and counted), and the
// writes themselves never wait for any of it.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { call, delay, metric, roundTrip, setupServer, uid, waitFor, worker } from './lib/server.mjs';

describe('max_concurrency', () => {
  const env = setupServer({ stream: { triggers: { max_concurrency: 10 } } });

  test('no more than max_concurrency handler calls are in flight (1,000 groups written once)', async (t) => {
    const w = worker(t, env.server);
    const stream = uid('conc');
    let inFlight = 0;
    let peak = 0;
    let done = 0;
    const fnId = `${stream}::slow`;
    w.registerFunction(fnId, async () => {
      inFlight += 1;
      peak = Math.max(peak, inFlight);
      await delay(20);
      inFlight -= 1;
      done += 1;
      return null;
    });
    w.registerTrigger({ type: 'stream', function_id: fnId, config: { stream_name: stream } });
    await roundTrip(w);
    const writes = [];
    for (let g = 0; g < 1000; g++) {
      writes.push(call(w, 'stream::set', { stream_name: stream, group_id: `g${g}`, item_id: 'i', data: g }));
    }
    await Promise.all(writes);
    await waitFor(() => done === 1000, { timeoutMs: 30_000, message: 'not every handler call finished' });
    assert.ok(peak <= 10, `peak in-flight handler calls ${peak} > max_concurrency 10`);
    assert.ok(peak >= 5, `peak ${peak}: dispatch did not run concurrently across groups`);
  });
});

describe('max_pending_per_trigger', () => {
  const env = setupServer({ stream: { triggers: { max_pending_per_trigger: 50 } } });

  test('frames beyond max_pending_per_trigger are dropped and counted; writes never wait', async (t) => {
    const w = worker(t, env.server);
    const stream = uid('pend');
    const fnId = `${stream}::stuck`;
    let release;
    const gate = new Promise((r) => (release = r));
    const seen = [];
    w.registerFunction(fnId, async (frame) => {
      seen.push(frame.seq);
      await gate;
      return null;
    });
    w.registerTrigger({ type: 'stream', function_id: fnId, config: { stream_name: stream } });
    await roundTrip(w);
    const droppedBefore = await metric(env.server, 'iii_stream_server_calls_total{kind="trigger",outcome="dropped"}');
    const started = Date.now();
    for (let i = 0; i < 200; i++) {
      await call(w, 'stream::set', { stream_name: stream, group_id: 'g', item_id: `i${i}`, data: i });
    }
    const elapsed = Date.now() - started;
    assert.ok(elapsed < 10_000, `200 writes took ${elapsed} ms while the handler was stuck`);
    await waitFor(() => seen.length === 1);
    release();
    // One call was in flight when the rest queued: 50 more fit, the remaining 149 were dropped.
    await waitFor(() => seen.length === 51, { timeoutMs: 10_000, message: `handler saw ${seen.length}` });
    await delay(200);
    assert.equal(seen.length, 51);
    assert.deepEqual(seen, [...seen].sort((a, b) => a - b), 'delivered in seq order');
    const dropped = (await metric(env.server, 'iii_stream_server_calls_total{kind="trigger",outcome="dropped"}')) - droppedBefore;
    assert.equal(dropped, 149);
  });
});
