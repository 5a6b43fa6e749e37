// stream::* functions called through iii-sdk@0.22.1 (stream.md §3): exact result shapes.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { byteSort, call, callErr, setupServer, uid, worker } from './lib/server.mjs';

const env = setupServer();

describe('stream::set', () => {
  test('create returns old_value null, overwrite returns the previous value (§3.2)', async (t) => {
    const w = worker(t, env.server);
    const s = uid('set');
    const key = { stream_name: s, group_id: 'g', item_id: 'i' };
    assert.deepEqual(await call(w, 'stream::set', { ...key, data: { id: 'i', n: 1 } }), {
      old_value: null,
      new_value: { id: 'i', n: 1 },
    });
    assert.deepEqual(await call(w, 'stream::set', { ...key, data: { id: 'i', n: 2 } }), {
      old_value: { id: 'i', n: 1 },
      new_value: { id: 'i', n: 2 },
    });
    assert.deepEqual(await call(w, 'stream::get', key), { id: 'i', n: 2 });
  });

  test('any JSON value can be stored, including null, scalars and arrays (§1)', async (t) => {
    const w = worker(t, env.server);
    const s = uid('set-values');
    const values = [null, 0, -7, 3.5, true, false, '', 'text', [], [1, [2, { a: null }]], {}, { nested: { deep: [1, 'x'] } }];
    for (const [i, v] of values.entries()) {
      const key = { stream_name: s, group_id: 'g', item_id: `v${i}` };
      assert.deepEqual(await call(w, 'stream::set', { ...key, data: v }), { old_value: null, new_value: v }, `value #${i}`);
      const got = await call(w, 'stream::get', key);
      assert.deepEqual(got, v, `get of value #${i}`);
    }
  });

  test('overwriting a stored null reports old_value null; setting null reports new_value null', async (t) => {
    const w = worker(t, env.server);
    const key = { stream_name: uid('set-null'), group_id: 'g', item_id: 'i' };
    assert.deepEqual(await call(w, 'stream::set', { ...key, data: { a: 1 } }), { old_value: null, new_value: { a: 1 } });
    assert.deepEqual(await call(w, 'stream::set', { ...key, data: null }), { old_value: { a: 1 }, new_value: null });
    assert.deepEqual(await call(w, 'stream::set', { ...key, data: 5 }), { old_value: null, new_value: 5 });
  });

  test('unknown extra input fields are ignored (§3.1)', async (t) => {
    const w = worker(t, env.server);
    const key = { stream_name: uid('set-extra'), group_id: 'g', item_id: 'i' };
    assert.deepEqual(await call(w, 'stream::set', { ...key, data: 1, extra: 'ignored', ttl: 5 }), {
      old_value: null,
      new_value: 1,
    });
  });
});

describe('stream::get', () => {
  test('hit returns the stored value unwrapped (§3.3)', async (t) => {
    const w = worker(t, env.server);
    const key = { stream_name: uid('get'), group_id: 'g', item_id: 'i' };
    await call(w, 'stream::set', { ...key, data: { id: 'i', text: 'hi' } });
    assert.deepEqual(await call(w, 'stream::get', key), { id: 'i', text: 'hi' });
  });

  test('miss resolves to undefined, not null (no `result` key; worker-protocol §7.3)', async (t) => {
    const w = worker(t, env.server);
    const s = uid('get-miss');
    await call(w, 'stream::set', { stream_name: s, group_id: 'g', item_id: 'present', data: 1 });
    // missing item in an existing group, missing group, missing stream
    assert.strictEqual(await call(w, 'stream::get', { stream_name: s, group_id: 'g', item_id: 'absent' }), undefined);
    assert.strictEqual(await call(w, 'stream::get', { stream_name: s, group_id: 'nope', item_id: 'present' }), undefined);
    assert.strictEqual(await call(w, 'stream::get', { stream_name: uid('nostream'), group_id: 'g', item_id: 'x' }), undefined);
  });

  test('a stored null resolves to null (`"result": null`)', async (t) => {
    const w = worker(t, env.server);
    const key = { stream_name: uid('get-null'), group_id: 'g', item_id: 'i' };
    await call(w, 'stream::set', { ...key, data: null });
    assert.strictEqual(await call(w, 'stream::get', key), null);
  });
});

describe('stream::delete', () => {
  test('existing item: returns {old_value} and the item is gone (§3.4)', async (t) => {
    const w = worker(t, env.server);
    const key = { stream_name: uid('del'), group_id: 'g', item_id: 'i' };
    await call(w, 'stream::set', { ...key, data: { id: 'i', v: [1, 2] } });
    assert.deepEqual(await call(w, 'stream::delete', key), { old_value: { id: 'i', v: [1, 2] } });
    assert.strictEqual(await call(w, 'stream::get', key), undefined);
    assert.deepEqual(await call(w, 'stream::list', { stream_name: key.stream_name, group_id: 'g' }), []);
  });

  test('missing item: success with old_value null', async (t) => {
    const w = worker(t, env.server);
    const s = uid('del-miss');
    assert.deepEqual(await call(w, 'stream::delete', { stream_name: s, group_id: 'g', item_id: 'i' }), { old_value: null });
    await call(w, 'stream::set', { stream_name: s, group_id: 'g', item_id: 'other', data: 1 });
    assert.deepEqual(await call(w, 'stream::delete', { stream_name: s, group_id: 'g', item_id: 'i' }), { old_value: null });
    assert.deepEqual(await call(w, 'stream::list', { stream_name: s, group_id: 'g' }), [1]);
  });

  test('deleting a stored null removes the item (old_value null)', async (t) => {
    const w = worker(t, env.server);
    const key = { stream_name: uid('del-null'), group_id: 'g', item_id: 'i' };
    await call(w, 'stream::set', { ...key, data: null });
    assert.deepEqual(await call(w, 'stream::delete', key), { old_value: null });
    assert.strictEqual(await call(w, 'stream::get', key), undefined);
    assert.deepEqual(await call(w, 'stream::list_groups', { stream_name: key.stream_name }), []);
  });
});

describe('stream::update', () => {
  test('result shape: errors omitted when empty (§3.5)', async (t) => {
    const w = worker(t, env.server);
    const key = { stream_name: uid('upd'), group_id: 'g', item_id: 'i' };
    const r1 = await call(w, 'stream::update', { ...key, ops: [{ type: 'set', path: 'a', value: 1 }] });
    assert.deepEqual(r1, { old_value: null, new_value: { a: 1 } });
    assert.ok(!('errors' in r1), 'errors must be omitted when empty');
    const r2 = await call(w, 'stream::update', { ...key, ops: [{ type: 'increment', path: 'a', by: 4 }] });
    assert.deepEqual(r2, { old_value: { a: 1 }, new_value: { a: 5 } });
    assert.deepEqual(await call(w, 'stream::get', key), { a: 5 });
  });

  test('result shape: errors present with op_index/code/message when an op fails', async (t) => {
    const w = worker(t, env.server);
    const key = { stream_name: uid('upd-err'), group_id: 'g', item_id: 'i' };
    await call(w, 'stream::set', { ...key, data: { n: 'x' } });
    const r = await call(w, 'stream::update', {
      ...key,
      ops: [
        { type: 'set', path: 'ok', value: 1 },
        { type: 'increment', path: 'n', by: 1 },
      ],
    });
    assert.deepEqual(Object.keys(r).sort(), ['errors', 'new_value', 'old_value']);
    assert.deepEqual(r.old_value, { n: 'x' });
    assert.deepEqual(r.new_value, { n: 'x', ok: 1 });
    assert.equal(r.errors.length, 1);
    const { doc_url, ...e } = r.errors[0]; // doc_url MAY be present; never asserted
    assert.equal(e.op_index, 1);
    assert.equal(e.code, 'increment.not_number');
    assert.equal(typeof e.message, 'string');
    assert.ok(e.message.length > 0);
    assert.deepEqual(Object.keys(e).sort(), ['code', 'message', 'op_index']);
    if (doc_url !== undefined) assert.equal(typeof doc_url, 'string');
    // the value is written even though an op failed
    assert.deepEqual(await call(w, 'stream::get', key), { n: 'x', ok: 1 });
  });

  test('ops: [] on a missing item creates {} (§3.5, §4.6)', async (t) => {
    const w = worker(t, env.server);
    const key = { stream_name: uid('upd-empty'), group_id: 'g', item_id: 'i' };
    assert.deepEqual(await call(w, 'stream::update', { ...key, ops: [] }), { old_value: null, new_value: {} });
    assert.deepEqual(await call(w, 'stream::get', key), {});
    // on an existing item, [] rewrites the same value
    assert.deepEqual(await call(w, 'stream::update', { ...key, ops: [] }), { old_value: {}, new_value: {} });
  });

  test('update of a stored null starts from null, not {}', async (t) => {
    const w = worker(t, env.server);
    const key = { stream_name: uid('upd-null'), group_id: 'g', item_id: 'i' };
    await call(w, 'stream::set', { ...key, data: null });
    const r = await call(w, 'stream::update', { ...key, ops: [{ type: 'set', path: 'a', value: 1 }] });
    assert.deepEqual(r.old_value, null);
    assert.deepEqual(r.new_value, null);
    assert.equal(r.errors?.[0]?.code, 'set.target_not_object');
  });
});

describe('stream::send', () => {
  test('returns null (result key present) and stores nothing (§3.6)', async (t) => {
    const w = worker(t, env.server);
    const s = uid('send');
    assert.strictEqual(await call(w, 'stream::send', { stream_name: s, group_id: 'g', type: 'ping', data: { x: 1 } }), null);
    assert.strictEqual(
      await call(w, 'stream::send', { stream_name: s, group_id: 'g', type: 'ping', data: null, id: 'i1' }),
      null,
    );
    assert.strictEqual(await call(w, 'stream::send', { stream_name: s, group_id: 'g', type: '', data: 1, id: null }), null);
    assert.deepEqual(await call(w, 'stream::list', { stream_name: s, group_id: 'g' }), []);
    assert.strictEqual(await call(w, 'stream::get', { stream_name: s, group_id: 'g', item_id: 'i1' }), undefined);
    assert.deepEqual(await call(w, 'stream::list_groups', { stream_name: s }), []);
  });
});

describe('stream::list', () => {
  test('missing group gives []', async (t) => {
    const w = worker(t, env.server);
    assert.deepEqual(await call(w, 'stream::list', { stream_name: uid('list-none'), group_id: 'g' }), []);
  });

  test('insertion order; overwrite keeps position; delete + recreate moves to the end (§1)', async (t) => {
    const w = worker(t, env.server);
    const s = uid('list');
    const set = (id, n) => call(w, 'stream::set', { stream_name: s, group_id: 'g', item_id: id, data: { id, n } });
    const list = () => call(w, 'stream::list', { stream_name: s, group_id: 'g' });
    // ids chosen so that key order, reverse order and insertion order all differ
    await set('m', 1);
    await set('z', 1);
    await set('a', 1);
    await set('q', 1);
    assert.deepEqual(await list(), [
      { id: 'm', n: 1 },
      { id: 'z', n: 1 },
      { id: 'a', n: 1 },
      { id: 'q', n: 1 },
    ]);
    await set('z', 2); // overwrite keeps position
    await call(w, 'stream::update', { stream_name: s, group_id: 'g', item_id: 'a', ops: [{ type: 'set', path: 'n', value: 3 }] });
    assert.deepEqual(await list(), [
      { id: 'm', n: 1 },
      { id: 'z', n: 2 },
      { id: 'a', n: 3 },
      { id: 'q', n: 1 },
    ]);
    await call(w, 'stream::delete', { stream_name: s, group_id: 'g', item_id: 'm' });
    await set('m', 4); // re-created: moves to the end
    assert.deepEqual(await list(), [
      { id: 'z', n: 2 },
      { id: 'a', n: 3 },
      { id: 'q', n: 1 },
      { id: 'm', n: 4 },
    ]);
  });

  test('values only (no ids, no wrapper); stored null appears as null; groups are separate', async (t) => {
    const w = worker(t, env.server);
    const s = uid('list-vals');
    await call(w, 'stream::set', { stream_name: s, group_id: 'g1', item_id: 'x', data: 'first' });
    await call(w, 'stream::set', { stream_name: s, group_id: 'g1', item_id: 'y', data: null });
    await call(w, 'stream::set', { stream_name: s, group_id: 'g1', item_id: 'z', data: [1] });
    await call(w, 'stream::set', { stream_name: s, group_id: 'g2', item_id: 'x', data: 'other group' });
    assert.deepEqual(await call(w, 'stream::list', { stream_name: s, group_id: 'g1' }), ['first', null, [1]]);
    assert.deepEqual(await call(w, 'stream::list', { stream_name: s, group_id: 'g2' }), ['other group']);
  });
});

describe('stream::list_groups', () => {
  test('sorted in byte order; stream with no groups gives [] (§3.8)', async (t) => {
    const w = worker(t, env.server);
    const s = uid('lg');
    // insertion order differs from byte order; includes upper/lower case, digits, non-ASCII
    // and a supplementary-plane character (UTF-16 order would differ from UTF-8 byte order).
    const groups = ['b', 'a', 'B', '10', '9', 'é', '\u{1F600}', '\uFF5E', 'a:b', 'a b'];
    for (const g of groups) await call(w, 'stream::set', { stream_name: s, group_id: g, item_id: 'x', data: 1 });
    assert.deepEqual(await call(w, 'stream::list_groups', { stream_name: s }), byteSort(groups));
    assert.deepEqual(await call(w, 'stream::list_groups', { stream_name: uid('lg-none') }), []);
  });

  test('exact per stream: `a` never returns groups of `a:b` (improvements j)', async (t) => {
    const w = worker(t, env.server);
    const p = uid('lgj');
    const a = `${p}a`;
    const ab = `${p}a:b`;
    await call(w, 'stream::set', { stream_name: a, group_id: 'g1', item_id: 'x', data: 0 });
    await call(w, 'stream::set', { stream_name: ab, group_id: 'g2', item_id: 'x', data: 0 });
    await call(w, 'stream::set', { stream_name: a, group_id: 'b:c', item_id: 'x', data: 1 });
    await call(w, 'stream::set', { stream_name: ab, group_id: 'c', item_id: 'x', data: 2 });
    assert.deepEqual(await call(w, 'stream::list_groups', { stream_name: a }), ['b:c', 'g1']);
    assert.deepEqual(await call(w, 'stream::list_groups', { stream_name: ab }), ['c', 'g2']);
    assert.strictEqual(await call(w, 'stream::get', { stream_name: a, group_id: 'b:c', item_id: 'x' }), 1);
    assert.strictEqual(await call(w, 'stream::get', { stream_name: ab, group_id: 'c', item_id: 'x' }), 2);
    // ("a:b","c") and ("a","b:c") are different groups
    assert.deepEqual(await call(w, 'stream::list', { stream_name: a, group_id: 'b:c' }), [1]);
    assert.deepEqual(await call(w, 'stream::list', { stream_name: ab, group_id: 'c' }), [2]);
  });

  test('an emptied group disappears immediately; a stored null keeps it alive (§1)', async (t) => {
    const w = worker(t, env.server);
    const s = uid('lg-empty');
    await call(w, 'stream::set', { stream_name: s, group_id: 'g1', item_id: 'x', data: 1 });
    await call(w, 'stream::set', { stream_name: s, group_id: 'g1', item_id: 'y', data: 2 });
    await call(w, 'stream::set', { stream_name: s, group_id: 'g2', item_id: 'n', data: null });
    assert.deepEqual(await call(w, 'stream::list_groups', { stream_name: s }), ['g1', 'g2']);
    await call(w, 'stream::delete', { stream_name: s, group_id: 'g1', item_id: 'x' });
    assert.deepEqual(await call(w, 'stream::list_groups', { stream_name: s }), ['g1', 'g2']);
    await call(w, 'stream::delete', { stream_name: s, group_id: 'g1', item_id: 'y' });
    assert.deepEqual(await call(w, 'stream::list_groups', { stream_name: s }), ['g2']);
    await call(w, 'stream::delete', { stream_name: s, group_id: 'g2', item_id: 'n' });
    assert.deepEqual(await call(w, 'stream::list_groups', { stream_name: s }), []);
  });
});

describe('names', () => {
  test('names with : * / % space NUL emoji and combining characters round-trip (§1, improvements j)', async (t) => {
    const w = worker(t, env.server);
    const p = uid('names');
    const names = ['a:b', '*', 'x/y', '%41%', 'with space', 'nul\u0000inside', '\u{1F680}\u{1F469}\u200D\u{1F4BB}', 'e\u0301', '\u00e9'];
    for (const n of names) {
      const stream_name = `${p}${n}`;
      const key = { stream_name, group_id: n, item_id: n };
      assert.deepEqual(await call(w, 'stream::set', { ...key, data: { name: n } }), { old_value: null, new_value: { name: n } });
      assert.deepEqual(await call(w, 'stream::get', key), { name: n }, `get ${JSON.stringify(n)}`);
      assert.deepEqual(await call(w, 'stream::list', { stream_name, group_id: n }), [{ name: n }]);
      assert.deepEqual(await call(w, 'stream::list_groups', { stream_name }), [n]);
    }
    // composed and decomposed é are different names (byte comparison, no normalisation)
    assert.deepEqual(await call(w, 'stream::get', { stream_name: `${p}e\u0301`, group_id: '\u00e9', item_id: '\u00e9' }), undefined);
  });

  test('a 4096-byte name is accepted; 4097 bytes is STREAM_INVALID_NAME (bytes, not characters)', async (t) => {
    const w = worker(t, env.server);
    const s = uid('names-len');
    const max = 'é'.repeat(2048); // 2048 chars, 4096 UTF-8 bytes
    const over = `${max}a`; // 2049 chars, 4097 bytes
    assert.equal(Buffer.byteLength(max), 4096);
    assert.equal(Buffer.byteLength(over), 4097);
    assert.deepEqual(await call(w, 'stream::set', { stream_name: s, group_id: max, item_id: max, data: 1 }), {
      old_value: null,
      new_value: 1,
    });
    assert.strictEqual(await call(w, 'stream::get', { stream_name: s, group_id: max, item_id: max }), 1);
    const e = await callErr(w, 'stream::set', { stream_name: s, group_id: over, item_id: 'x', data: 1 });
    assert.equal(e.code, 'STREAM_INVALID_NAME');
    assert.ok(e.message.startsWith('group_id'), e.message);
    assert.deepEqual(await call(w, 'stream::list_groups', { stream_name: s }), [max]);
  });
});
