// stream::list_all (stream.md §3.9) on a dedicated server, so the whole listing can be compared
// with deep equality. Tests in this file run sequentially and build on each other's state.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { call, callErr, setupServer, worker } from './lib/server.mjs';

const env = setupServer();

describe('stream::list_all', () => {
  test('empty server: {stream: [], count: 0}', async (t) => {
    const w = worker(t, env.server);
    assert.deepEqual(await call(w, 'stream::list_all', {}), { stream: [], count: 0 });
  });

  test('streams sorted, groups sorted, names with ":" intact, count = entries (improvements j)', async (t) => {
    const w = worker(t, env.server);
    const writes = [
      ['a', 'g1', 'x', 0],
      ['a:b', 'g2', 'x', 0],
      ['a', 'b:c', 'x', 1],
      ['a:b', 'c', 'x', 2],
      ['iii:devtools:spans', 'trace:1', 'span', { ok: true }],
      ['Zed', 'only', 'i', null], // a stored null keeps its group alive
      ['a', 'g1', 'y', 3],
    ];
    for (const [stream_name, group_id, item_id, data] of writes) {
      await call(w, 'stream::set', { stream_name, group_id, item_id, data });
    }
    assert.deepEqual(await call(w, 'stream::list_all', {}), {
      stream: [
        { id: 'Zed', groups: ['only'] },
        { id: 'a', groups: ['b:c', 'g1'] },
        { id: 'a:b', groups: ['c', 'g2'] },
        { id: 'iii:devtools:spans', groups: ['trace:1'] },
      ],
      count: 4,
    });
  });

  test('accepts null/absent, extra keys and an array as input; other types are deserialization_error', async (t) => {
    const w = worker(t, env.server);
    const expected = await call(w, 'stream::list_all', {});
    // payload undefined => the SDK sends no `data` key (worker-protocol §3 rule 5)
    assert.deepEqual(await w.trigger({ function_id: 'stream::list_all' }), expected);
    assert.deepEqual(await call(w, 'stream::list_all', null), expected);
    assert.deepEqual(await call(w, 'stream::list_all', { stream_name: 'ignored', x: 1 }), expected);
    assert.deepEqual(await call(w, 'stream::list_all', []), expected);
    for (const bad of [5, 'text', true]) {
      const e = await callErr(w, 'stream::list_all', bad);
      assert.equal(e.code, 'deserialization_error', `payload ${JSON.stringify(bad)}`);
      assert.ok(e.message.startsWith('Failed to deserialize input for stream::list_all'), e.message);
    }
  });

  test('an emptied group and an emptied stream disappear immediately (improvements j)', async (t) => {
    const w = worker(t, env.server);
    await call(w, 'stream::delete', { stream_name: 'a', group_id: 'g1', item_id: 'x' });
    await call(w, 'stream::delete', { stream_name: 'a', group_id: 'g1', item_id: 'y' });
    await call(w, 'stream::delete', { stream_name: 'Zed', group_id: 'only', item_id: 'i' });
    assert.deepEqual(await call(w, 'stream::list_all', {}), {
      stream: [
        { id: 'a', groups: ['b:c'] },
        { id: 'a:b', groups: ['c', 'g2'] },
        { id: 'iii:devtools:spans', groups: ['trace:1'] },
      ],
      count: 3,
    });
    assert.deepEqual(await call(w, 'stream::list_groups', { stream_name: 'Zed' }), []);
  });

  test('stream::send and failed writes never create listings', async (t) => {
    const w = worker(t, env.server);
    const before = await call(w, 'stream::list_all', {});
    await call(w, 'stream::send', { stream_name: 'ephemeral', group_id: 'g', type: 't', data: 1 });
    await callErr(w, 'stream::set', { stream_name: 'broken', group_id: 'g', item_id: 5, data: 1 });
    await callErr(w, 'stream::update', { stream_name: 'broken', group_id: 'g', item_id: 'i', ops: [{ type: 'Set', path: 'a' }] });
    await call(w, 'stream::delete', { stream_name: 'never', group_id: 'g', item_id: 'i' });
    assert.deepEqual(await call(w, 'stream::list_all', {}), before);
  });
});
