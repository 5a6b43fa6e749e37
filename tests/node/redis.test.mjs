// Two iii-stream processes on one Redis (improvements k, b, j): an iii-sdk@0.22.1 worker writes
// on server A while a Motia Node client (`@motiadev/stream-client-node`) subscribed on server B
// receives every frame, in order, with consecutive `seq`; listings agree on both servers; two
// workers, one per server, each increment one item 1,000 times concurrently and nothing is lost.
//
// Needs a Redis on 127.0.0.1:6379 (database 12; override with REDIS_TEST_URL). The test's names
// carry a unique token and every key holding it is deleted at the end.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Stream } from '@motiadev/stream-client-node';
import { call, startServer, uid, waitFor, worker } from './lib/server.mjs';
import { cleanupRedis, onRedis } from './lib/redis.mjs';

const TOKEN = uid('redis');
const cleanup = () => cleanupRedis(TOKEN);

describe('redis adapter: two servers on one Redis', () => {
  let a;
  let b;
  before(async () => {
    a = await startServer(onRedis);
    b = await startServer(onRedis);
  });
  after(async () => {
    await a?.stop();
    await b?.stop();
    cleanup();
  });

  test('a worker writes on A; a Motia client on B gets every frame with consecutive seq; listings agree', async (t) => {
    const w = worker(t, a);
    const s = `${TOKEN}-chat:room%`;
    await call(w, 'stream::set', { stream_name: s, group_id: 'room', item_id: 'm0', data: { id: 'm0', text: 'first' } });

    const client = new Stream(b.streamUrl);
    t.after(() => client.close());
    const sub = client.subscribeGroup(s, 'room');
    const frames = [];
    const listener = sub.listener.bind(sub);
    sub.listener = (message) => {
      frames.push(message);
      listener(message);
    };
    await waitFor(() => frames.length > 0, { message: 'no sync on B' });
    const sync = frames[0];
    assert.equal(sync.event.type, 'sync');
    assert.deepEqual(sync.event.data, [{ id: 'm0', text: 'first' }]);

    // 12 rounds of 10 concurrent writes: creates, appends, overwrites, deletes and sends.
    let writes = 0;
    for (let round = 0; round < 12; round++) {
      const batch = [];
      for (let i = 0; i < 10; i++) {
        const item = `m${(round * 10 + i) % 17}`;
        const base = { stream_name: s, group_id: 'room', item_id: item };
        switch (i % 5) {
          case 0:
          case 1:
            batch.push(call(w, 'stream::set', { ...base, data: { id: item, text: `r${round}` } }));
            break;
          case 2:
            batch.push(call(w, 'stream::update', { ...base, ops: [{ type: 'append', path: 'text', value: '+' }, { type: 'set', path: 'id', value: item }] }));
            break;
          case 3:
            batch.push(call(w, 'stream::delete', base));
            break;
          default:
            batch.push(call(w, 'stream::send', { stream_name: s, group_id: 'room', type: 'typing', data: { round } }));
        }
      }
      const results = await Promise.all(batch);
      // A delete of a missing item emits nothing.
      writes += results.filter((r, i) => i % 5 !== 3 || r.old_value !== null).length;
    }
    await waitFor(() => frames.length === 1 + writes, {
      timeoutMs: 10000,
      message: () => `B received ${frames.length - 1} of ${writes} frames`,
    });
    frames.slice(1).forEach((f, i) => {
      assert.equal(f.seq, sync.seq + 1 + i, `frame ${i}: ${JSON.stringify(f)}`);
      assert.equal(f.epoch, sync.epoch);
      assert.equal(f.streamName, s);
    });
    const timestamps = frames.slice(1).map((f) => f.timestamp);
    assert.ok(timestamps.every((ts, i) => i === 0 || ts > timestamps[i - 1]), 'timestamps strictly increase');

    const wb = worker(t, b);
    const list = { stream_name: s, group_id: 'room' };
    const onA = await call(w, 'stream::list', list);
    assert.deepEqual(await call(wb, 'stream::list', list), onA);
    assert.deepEqual(sub.getState(), onA, 'the Motia client on B converged to the stored state');
    assert.deepEqual(await call(wb, 'stream::list_groups', { stream_name: s }), ['room']);
    assert.deepEqual(await call(w, 'stream::list_groups', { stream_name: s }), ['room']);
    const ours = (all) => all.stream.filter((e) => e.id.includes(TOKEN));
    assert.deepEqual(ours(await call(wb, 'stream::list_all', {})), ours(await call(w, 'stream::list_all', {})));
    assert.deepEqual(ours(await call(w, 'stream::list_all', {})), [{ id: s, groups: ['room'] }]);
  });

  test('two workers on A and B each increment one item 1,000 times concurrently: 2,000', async (t) => {
    const s = `${TOKEN}-count`;
    const workers = [a, b].map((server) => worker(t, server, { invocationTimeoutMs: 60000 }));
    const input = { stream_name: s, group_id: 'g', item_id: 'n', ops: [{ type: 'increment', path: 'count', by: 1 }] };
    await Promise.all(
      workers.map((w) => Promise.all(Array.from({ length: 1000 }, () => call(w, 'stream::update', input)))),
    );
    const get = { stream_name: s, group_id: 'g', item_id: 'n' };
    assert.deepEqual(await call(workers[0], 'stream::get', get), { count: 2000 });
    assert.deepEqual(await call(workers[1], 'stream::get', get), { count: 2000 });
  });
});
