// The attack suite (docs/limits.md): every resource a peer can grow has a bound, a peer that hits
// one gets a clear refusal or close code, memory goes back afterwards, and a healthy worker that
// keeps calling throughout stays within 3x of its unloaded p99 (plus a few ms of slack: the
// unloaded figure is well under a millisecond, so scheduling noise would otherwise dominate).
//
// CI-sized (tens of thousands of operations, seconds each); `measure.mjs` runs the same attacks
// at full size. The server is the debug build the rest of the suite uses.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { metric, startServer } from '../lib/server.mjs';
import * as a from './scenarios.mjs';

const MB = a.MB;

/** A fresh in-memory server with short windows, so idle state goes within seconds. */
async function server(t, extra = {}) {
  const s = await startServer({
    stream: {
      history: { max_age_ms: 1000 },
      timeouts: { join_ms: 200 },
      limits: { joins_per_second: 1_000_000, join_burst: 1_000_000, write_timeout_ms: 2000, ...extra.limits },
      ...extra.stream,
    },
    engine: extra.engine ?? {},
  });
  t.after(() => s.stop());
  return s;
}

/** Nobody else noticed: the healthy worker never failed and its p99 stayed within bounds. */
function unnoticed(figures, baseline, slackMs = 15) {
  assert.equal(figures.healthy.failures, 0, 'the healthy worker saw failures');
  assert.ok(figures.healthy.calls > 20, `too few healthy calls to judge (${figures.healthy.calls})`);
  const bound = 3 * baseline.p99 + slackMs;
  assert.ok(figures.healthy.p99 <= bound, `healthy p99 ${figures.healthy.p99.toFixed(2)} ms > ${bound.toFixed(2)} ms (unloaded ${baseline.p99.toFixed(2)} ms)`);
}

/** Memory went back: after the attack and an idle sweep, within `mb` of before. */
function returned(figures, mb = 10) {
  const grown = figures.rss_after_mb - figures.rss_before_mb;
  assert.ok(grown < mb, `RSS ${figures.rss_before_mb.toFixed(1)} → ${figures.rss_after_mb.toFixed(1)} MB (peak ${figures.rss_peak_mb.toFixed(1)})`);
}

const afterSweep = () => a.delayMs(3500);

describe('attacks', () => {
  test('join/leave over fresh group names on one connection leaves nothing behind', async (t) => {
    const s = await server(t);
    const baseline = await a.unloaded(s);
    const figures = await a.measured(s, () => a.joinLeave(s, { cycles: 20_000 }), { after: afterSweep });
    assert.equal(figures.refused, 0);
    unnoticed(figures, baseline);
    returned(figures);
    assert.equal(await metric(s, 'iii_stream_channels'), 0, 'no channel left');
    assert.equal(await metric(s, 'iii_stream_groups'), 1, "no group left but the healthy worker's");
  });

  test('join, write, delete, leave over fresh group names leaves nothing behind', async (t) => {
    const s = await server(t);
    const baseline = await a.unloaded(s);
    const figures = await a.measured(s, () => a.joinLeave(s, { cycles: 10_000, writes: true }), { after: afterSweep });
    unnoticed(figures, baseline);
    returned(figures);
    assert.equal(await metric(s, 'iii_stream_groups'), 1, "no group left but the healthy worker's");
  });

  test('set+delete and send over fresh groups: memory follows live data', async (t) => {
    const s = await server(t);
    const baseline = await a.unloaded(s);
    for (const op of ['set-delete', 'send']) {
      const figures = await a.measured(s, () => a.freshGroups(s, { groups: 30_000, op }), { after: afterSweep });
      assert.equal(figures.errors, 0);
      unnoticed(figures, baseline);
      returned(figures);
      assert.equal(await metric(s, 'iii_stream_groups'), 1, 'only the healthy worker group');
    }
  });

  test('joins are rate limited per connection', async (t) => {
    const s = await server(t, { limits: { joins_per_second: 50, join_burst: 100 } });
    const figures = await a.joinLeave(s, { cycles: 400, window: 400 });
    assert.ok(figures.refused >= 250, `${figures.refused} of 400 refused`);
    assert.ok((await metric(s, 'iii_stream_limit_refusals_total{limit="joins_per_second"}')) >= 250);
  });

  test('a worker that pipelines calls and never reads is closed, within a memory bound', async (t) => {
    const s = await server(t);
    const baseline = await a.unloaded(s);
    const figures = await a.measured(s, () => a.nonReading(s, { calls: 200_000 }));
    assert.ok(figures.closedByServer, 'the non-reading worker was closed');
    assert.ok(figures.rss_peak_mb - figures.rss_before_mb < 256, `peak ${figures.rss_peak_mb} MB`);
    unnoticed(figures, baseline, 50);
  });

  test('a flooding worker that reads is served and leaves nothing behind', async (t) => {
    const s = await server(t);
    const baseline = await a.unloaded(s);
    // Built-in calls complete as they are read, so the reader itself is the throttle: the
    // socket is read no faster than the calls are handled.
    const figures = await a.measured(s, () => a.flood(s, { calls: 100_000 }));
    assert.equal(figures.errors, 0);
    unnoticed(figures, baseline, 50);
    returned(figures, 16);
  });

  test('calls to a function that never answers are bounded per caller and freed on disconnect', async (t) => {
    const s = await server(t, { engine: { max_in_flight_calls: 512 } });
    const figures = await a.hungFunction(s, { calls: 20_000 });
    assert.ok(figures.pending_while_hung <= 512, `${figures.pending_while_hung} pending`);
    assert.equal(figures.pending_after, 0);
  });

  for (const fail_closed of [false, true]) {
    test(`joins whose stream:join handler never answers end at join_ms (fail_closed: ${fail_closed})`, async (t) => {
      const s = await server(t, { stream: { fail_closed } });
      const before = await a.settledRss(s, 3000);
      const figures = await a.hungJoin(s, { joins: 2_000, connections: 100 });
      if (fail_closed) assert.equal(figures.refused, 2_000);
      else assert.equal(figures.admitted, 2_000);
      assert.ok(figures.pending_while_gated > 0, 'the joins really waited on the gate');
      assert.equal(figures.pending_after_abandoned_joins, 0, 'abandoned joins left invocations behind');
      assert.equal(figures.pending_after, 0, 'no invocation left once the gate worker is gone');
      await afterSweep();
      const after = await a.settledRss(s);
      assert.ok(after - before < 10 * MB, `RSS ${(before / MB).toFixed(1)} → ${(after / MB).toFixed(1)} MB`);
    });
  }

  test('idle worker connections cost at most 16 KB each', async (t) => {
    const s = await server(t);
    const figures = await a.idleWorkers(s, { count: 1000 });
    assert.equal(figures.connections_seen, 1000);
    assert.ok(figures.bytes_per_connection <= 16 * 1024, `${figures.bytes_per_connection} B per idle worker connection`);
  });

  test('a socket bound to /stream/public/g cannot join another stream', async (t) => {
    const s = await server(t);
    assert.deepEqual(await a.pathBound(s), { answer: 'unauthorized', reason: 'path_bound' });
    assert.equal(await metric(s, 'iii_stream_limit_refusals_total{limit="path_bound"}'), 1);
  });

  test('subscribers of a large group that never read are closed as slow consumers', async (t) => {
    const s = await server(t);
    const before = await a.settledRss(s, 3000);
    const figures = await a.bigGroupNonReaders(s, { subscribers: 10, items: 4, withinMs: 5000 });
    assert.equal(figures.slow_consumer_closes, 10);
    // 1013 where the close frame still fits; a peer that reads nothing cannot receive it, and
    // sees the connection dropped (1006).
    assert.ok(figures.close_codes.every((c) => c === 1013 || c === 1006), `close codes ${figures.close_codes}`);
    const after = await a.settledRss(s);
    assert.ok(after - before < 16 * MB, `RSS ${(before / MB).toFixed(1)} → ${(after / MB).toFixed(1)} MB`);
  });

  test('slowloris handshakes are closed at the header deadline', async (t) => {
    const s = await server(t);
    const figures = await a.slowloris(s, { count: 200 });
    assert.equal(figures.closed, 200);
    assert.ok(figures.max_seconds < 15, `${figures.max_seconds} s`);
  });

  test('connections over the limits get 503 on both ports, and the limits hold', async (t) => {
    const s = await server(t, { limits: { max_connections: 20 }, engine: { max_connections: 10 } });
    const subs = await a.overLimit(s.streamUrl, { count: 30 });
    const workers = await a.overLimit(s.engineUrl, { count: 15 });
    assert.equal(subs.opened, 20);
    assert.equal(subs.refused_503, 10);
    assert.equal(workers.opened, 10);
    assert.equal(workers.refused_503, 5);
    for (const ws of [...subs.sockets, ...workers.sockets]) ws.terminate();
    assert.ok((await metric(s, 'iii_stream_limit_refusals_total{limit="worker_connections"}')) >= 5);
  });

  test('garbage on both ports changes nothing for anyone', async (t) => {
    const s = await server(t);
    const baseline = await a.unloaded(s);
    const figures = await a.measured(s, () => a.garbage(s, { messages: 5_000 }));
    assert.ok(figures.engine, 'the engine connection stays up');
    unnoticed(figures, baseline);
  });
});
