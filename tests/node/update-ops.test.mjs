// stream::update operations (stream.md §4) through iii-sdk@0.22.1.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { call, callErr, rawEngine, setupServer, uid, worker } from './lib/server.mjs';

const env = setupServer();

const MISSING = Symbol('missing');

/** Store `initial` (unless MISSING) in a fresh item, apply ops, return {r, key}. */
async function applyOps(w, initial, ops) {
  const key = { stream_name: uid('ops'), group_id: 'g', item_id: 'i' };
  if (initial !== MISSING) await call(w, 'stream::set', { ...key, data: initial });
  const r = await call(w, 'stream::update', { ...key, ops });
  return { r, key };
}

/** Errors without doc_url (which MAY be present and is never asserted) and without messages. */
function codes(r) {
  return (r.errors ?? []).map((e) => ({ op_index: e.op_index, code: e.code }));
}

function checkErrorEntries(r) {
  for (const e of r.errors ?? []) {
    assert.equal(typeof e.op_index, 'number');
    assert.equal(typeof e.code, 'string');
    assert.equal(typeof e.message, 'string');
    assert.ok(e.message.length > 0);
    for (const k of Object.keys(e)) assert.ok(['op_index', 'code', 'message', 'doc_url'].includes(k), `unexpected key ${k}`);
  }
}

/** Apply and compare new_value and error codes; also checks the stored value equals new_value. */
async function expectOps(w, initial, ops, newValue, errCodes = []) {
  const { r, key } = await applyOps(w, initial, ops);
  const label = `initial=${initial === MISSING ? 'missing' : JSON.stringify(initial)} ops=${JSON.stringify(ops)}`;
  assert.deepEqual(r.new_value, newValue, `new_value for ${label}`);
  assert.deepEqual(r.old_value, initial === MISSING ? null : initial, `old_value for ${label}`);
  checkErrorEntries(r);
  if (errCodes.length === 0) assert.ok(!('errors' in r), `errors must be omitted for ${label}: ${JSON.stringify(r.errors)}`);
  assert.deepEqual(codes(r), errCodes.map(([op_index, code]) => ({ op_index, code })), `errors for ${label}`);
  assert.deepEqual(await call(w, 'stream::get', key), newValue, `stored value for ${label}`);
  return r;
}

describe('§4.6 examples', () => {
  const rows = [
    [MISSING, [{ type: 'increment', path: '', by: 5 }], 5, []],
    [MISSING, [], {}, []],
    [{ n: 1 }, [{ type: 'increment', path: 'n', by: 2 }, { type: 'set', path: 'a.b', value: true }], { n: 3, 'a.b': true }, []],
    [{ n: 'x' }, [{ type: 'increment', path: 'n', by: 1 }, { type: 'set', path: 'ok', value: 1 }], { n: 'x', ok: 1 }, [[0, 'increment.not_number']]],
    [{ a: [1] }, [{ type: 'merge', path: ['a', 'b'], value: { c: 1 } }], { a: { b: { c: 1 } } }, []],
    [{ log: 'ab' }, [{ type: 'append', path: 'log', value: 'c' }], { log: 'abc' }, []],
    [{}, [{ type: 'append', path: ['x', 'y'], value: 's' }], { x: { y: ['s'] } }, []],
    [[1], [{ type: 'set', path: 'k', value: 1 }], [1], [[0, 'set.target_not_object']]],
    [{ a: 1 }, [{ type: 'remove', path: '__proto__' }], { a: 1 }, [[0, 'remove.path.proto_polluted']]],
  ];
  for (const [i, [initial, ops, expected, errs]] of rows.entries()) {
    test(`row ${i + 1}: ${initial === MISSING ? 'missing' : JSON.stringify(initial)} ${JSON.stringify(ops)}`, async (t) => {
      const w = worker(t, env.server);
      await expectOps(w, initial, ops, expected, errs);
    });
  }
});

describe('set op', () => {
  test('insert, overwrite, value absent or null means null, root replaces the value', async (t) => {
    const w = worker(t, env.server);
    await expectOps(w, { a: 1 }, [{ type: 'set', path: 'b', value: { x: [1] } }], { a: 1, b: { x: [1] } });
    await expectOps(w, { a: 1 }, [{ type: 'set', path: 'a', value: 'two' }], { a: 'two' });
    await expectOps(w, { a: 1 }, [{ type: 'set', path: 'a' }], { a: null });
    await expectOps(w, { a: 1 }, [{ type: 'set', path: 'b', value: null }], { a: 1, b: null });
    await expectOps(w, { a: 1 }, [{ type: 'set', path: '', value: [1, 2] }], [1, 2]);
    await expectOps(w, 'str', [{ type: 'set', path: '', value: { r: 1 } }], { r: 1 });
    await expectOps(w, MISSING, [{ type: 'set', path: 'k', value: 1 }], { k: 1 });
  });

  test('no dot syntax: "a.b" is one literal key', async (t) => {
    const w = worker(t, env.server);
    await expectOps(w, { a: { b: 1 } }, [{ type: 'set', path: 'a.b', value: 2 }], { a: { b: 1 }, 'a.b': 2 });
  });

  test('target not an object → set.target_not_object', async (t) => {
    const w = worker(t, env.server);
    await expectOps(w, 5, [{ type: 'set', path: 'k', value: 1 }], 5, [[0, 'set.target_not_object']]);
    await expectOps(w, null, [{ type: 'set', path: 'k', value: 1 }], null, [[0, 'set.target_not_object']]);
    await expectOps(w, 'x', [{ type: 'set', path: 'k', value: 1 }], 'x', [[0, 'set.target_not_object']]);
  });

  test('extra keys inside an op are ignored (§4.1)', async (t) => {
    const w = worker(t, env.server);
    await expectOps(w, {}, [{ type: 'set', path: 'k', value: 1, by: 'x', comment: 'ignored' }], { k: 1 });
  });
});

describe('merge op', () => {
  test('root merge is shallow: nested objects are replaced', async (t) => {
    const w = worker(t, env.server);
    await expectOps(w, { a: { x: 1, y: 2 }, b: 1 }, [{ type: 'merge', value: { a: { z: 3 }, c: 4 } }], { a: { z: 3 }, b: 1, c: 4 });
  });

  test('root designators: absent, null, "" and [] all mean the root', async (t) => {
    const w = worker(t, env.server);
    for (const path of [undefined, null, '', []]) {
      const op = { type: 'merge', value: { m: 1 } };
      if (path !== undefined) op.path = path;
      await expectOps(w, { k: 0 }, [op], { k: 0, m: 1 });
    }
  });

  test('root merge onto a non-object changes nothing and records no error', async (t) => {
    const w = worker(t, env.server);
    await expectOps(w, [1, 2], [{ type: 'merge', path: '', value: { a: 1 } }], [1, 2]);
    await expectOps(w, 'text', [{ type: 'merge', value: { a: 1 } }], 'text');
    await expectOps(w, null, [{ type: 'merge', value: { a: 1 } }], null);
  });

  test('nested merge: string path is one segment; array path walks and creates objects', async (t) => {
    const w = worker(t, env.server);
    await expectOps(w, { a: { x: 1 } }, [{ type: 'merge', path: 'a', value: { y: 2 } }], { a: { x: 1, y: 2 } });
    await expectOps(w, { 'a.b': { x: 1 } }, [{ type: 'merge', path: 'a.b', value: { y: 2 } }], { 'a.b': { x: 1, y: 2 } });
    await expectOps(w, {}, [{ type: 'merge', path: ['p', 'q', 'r'], value: { v: 1 } }], { p: { q: { r: { v: 1 } } } });
    await expectOps(w, { p: 5, keep: true }, [{ type: 'merge', path: ['p', 'q'], value: { v: 1 } }], { p: { q: { v: 1 } }, keep: true });
    // a non-object value at the root is discarded for a nested merge
    await expectOps(w, [1], [{ type: 'merge', path: ['a'], value: { v: 1 } }], { a: { v: 1 } });
    await expectOps(w, MISSING, [{ type: 'merge', path: 'a', value: { v: 1 } }], { a: { v: 1 } });
  });

  test('value validation: not an object, too many keys, proto key, too deep', async (t) => {
    const w = worker(t, env.server);
    await expectOps(w, { a: 1 }, [{ type: 'merge', value: [1] }], { a: 1 }, [[0, 'merge.value.not_an_object']]);
    await expectOps(w, { a: 1 }, [{ type: 'merge', path: 'x', value: 'str' }], { a: 1 }, [[0, 'merge.value.not_an_object']]);
    const many = Object.fromEntries(Array.from({ length: 1025 }, (_, i) => [`k${i}`, i]));
    await expectOps(w, { a: 1 }, [{ type: 'merge', value: many }], { a: 1 }, [[0, 'merge.value.too_many_keys']]);
    const exactly1024 = Object.fromEntries(Array.from({ length: 1024 }, (_, i) => [`k${i}`, i]));
    await expectOps(w, {}, [{ type: 'merge', value: exactly1024 }], exactly1024);
    // JSON.parse creates an own "__proto__" key (an object literal would set the prototype)
    const proto = JSON.parse('{"__proto__": {"polluted": true}, "ok": 1}');
    await expectOps(w, { a: 1 }, [{ type: 'merge', value: proto }], { a: 1 }, [[0, 'merge.value.proto_polluted']]);
    await expectOps(w, { a: 1 }, [{ type: 'merge', value: { constructor: 1 } }], { a: 1 }, [[0, 'merge.value.proto_polluted']]);
    // depth: object with 16 nested levels is depth 16 (ok); 17 is too deep
    const nest = (d) => (d === 1 ? { leaf: 1 } : { n: nest(d - 1) });
    await expectOps(w, {}, [{ type: 'merge', value: nest(16) }], nest(16));
    await expectOps(w, { a: 1 }, [{ type: 'merge', value: nest(17) }], { a: 1 }, [[0, 'merge.value.too_deep']]);
  });
});

describe('increment / decrement ops', () => {
  test('existing number, missing key, root on a missing item', async (t) => {
    const w = worker(t, env.server);
    await expectOps(w, { n: 1 }, [{ type: 'increment', path: 'n', by: 2 }], { n: 3 });
    await expectOps(w, { n: 1 }, [{ type: 'decrement', path: 'n', by: 5 }], { n: -4 });
    await expectOps(w, { n: 1.5 }, [{ type: 'increment', path: 'n', by: 1 }], { n: 2.5 });
    await expectOps(w, {}, [{ type: 'increment', path: 'n', by: 7 }], { n: 7 });
    await expectOps(w, {}, [{ type: 'decrement', path: 'n', by: 7 }], { n: -7 });
    await expectOps(w, MISSING, [{ type: 'increment', path: '', by: 5 }], 5);
    await expectOps(w, MISSING, [{ type: 'decrement', path: '', by: 5 }], -5);
    await expectOps(w, 10, [{ type: 'increment', path: '', by: -3 }], 7);
    await expectOps(w, 10, [{ type: 'decrement', path: '', by: 3 }], 7);
    await expectOps(w, { n: 1 }, [{ type: 'increment', path: 'n', by: 0 }], { n: 1 });
  });

  test('not a number → <op>.not_number; target not an object → <op>.target_not_object', async (t) => {
    const w = worker(t, env.server);
    await expectOps(w, { n: null }, [{ type: 'increment', path: 'n', by: 1 }], { n: null }, [[0, 'increment.not_number']]);
    await expectOps(w, { n: '1' }, [{ type: 'decrement', path: 'n', by: 1 }], { n: '1' }, [[0, 'decrement.not_number']]);
    await expectOps(w, { n: 1 }, [{ type: 'increment', path: '', by: 1 }], { n: 1 }, [[0, 'increment.not_number']]);
    await expectOps(w, { n: 'x' }, [{ type: 'increment', path: 'n', by: 0 }], { n: 'x' }, [[0, 'increment.not_number']]);
    await expectOps(w, [1], [{ type: 'increment', path: 'n', by: 1 }], [1], [[0, 'increment.target_not_object']]);
    await expectOps(w, 3, [{ type: 'decrement', path: 'n', by: 1 }], 3, [[0, 'decrement.target_not_object']]);
  });

  test('the missing flag M: root increment after a successful op on a missing item fails', async (t) => {
    const w = worker(t, env.server);
    // set succeeds → M=false → root increment of {} is not a number
    await expectOps(
      w,
      MISSING,
      [{ type: 'set', path: 'a', value: 1 }, { type: 'increment', path: '', by: 5 }],
      { a: 1 },
      [[1, 'increment.not_number']],
    );
    // a failing op leaves M=true → root append on a missing item starts from null
    await expectOps(
      w,
      MISSING,
      [{ type: 'remove', path: '__proto__' }, { type: 'append', path: '', value: 'hi' }],
      'hi',
      [[0, 'remove.path.proto_polluted']],
    );
  });
});

describe('append op', () => {
  test('leaf append onto arrays, strings and null', async (t) => {
    const w = worker(t, env.server);
    await expectOps(w, { l: [1] }, [{ type: 'append', path: 'l', value: 2 }], { l: [1, 2] });
    await expectOps(w, { l: [1] }, [{ type: 'append', path: 'l', value: [2, 3] }], { l: [1, [2, 3]] });
    await expectOps(w, { s: 'ab' }, [{ type: 'append', path: 's', value: 'cd' }], { s: 'abcd' });
    await expectOps(w, { s: 'ab' }, [{ type: 'append', path: 's', value: 1 }], { s: 'ab' }, [[0, 'append.type_mismatch']]);
    await expectOps(w, { z: null }, [{ type: 'append', path: 'z', value: 'x' }], { z: 'x' });
    await expectOps(w, { z: null }, [{ type: 'append', path: 'z', value: 1 }], { z: [1] });
    await expectOps(w, { o: {} }, [{ type: 'append', path: 'o', value: 1 }], { o: {} }, [[0, 'append.type_mismatch']]);
    await expectOps(w, { n: 5 }, [{ type: 'append', path: 'n', value: 1 }], { n: 5 }, [[0, 'append.type_mismatch']]);
  });

  test('one missing segment: a string becomes the string, anything else [x]', async (t) => {
    const w = worker(t, env.server);
    await expectOps(w, {}, [{ type: 'append', path: 'k', value: 'x' }], { k: 'x' });
    await expectOps(w, {}, [{ type: 'append', path: ['k'], value: { a: 1 } }], { k: [{ a: 1 }] });
    await expectOps(w, MISSING, [{ type: 'append', path: 'k', value: 2 }], { k: [2] });
  });

  test('two or more segments: parents created, a missing leaf is always an array', async (t) => {
    const w = worker(t, env.server);
    await expectOps(w, {}, [{ type: 'append', path: ['a', 'b', 'c'], value: 'x' }], { a: { b: { c: ['x'] } } });
    await expectOps(w, { a: 1 }, [{ type: 'append', path: ['a', 'b'], value: 2 }], { a: { b: [2] } });
    await expectOps(w, { a: { b: 'x' } }, [{ type: 'append', path: ['a', 'b'], value: 'y' }], { a: { b: 'xy' } });
  });

  test('root append: missing item starts from null; stored {} is a type mismatch', async (t) => {
    const w = worker(t, env.server);
    await expectOps(w, MISSING, [{ type: 'append', path: '', value: 'hello' }], 'hello');
    await expectOps(w, MISSING, [{ type: 'append', value: { a: 1 } }], [{ a: 1 }]);
    await expectOps(w, [1], [{ type: 'append', path: [], value: 2 }], [1, 2]);
    await expectOps(w, {}, [{ type: 'append', path: '', value: 1 }], {}, [[0, 'append.type_mismatch']]);
    await expectOps(w, null, [{ type: 'append', value: 'x' }], 'x');
  });

  test('nested append on a non-object value → append.target_not_object', async (t) => {
    const w = worker(t, env.server);
    await expectOps(w, [1], [{ type: 'append', path: 'k', value: 1 }], [1], [[0, 'append.target_not_object']]);
    await expectOps(w, 'str', [{ type: 'append', path: ['a', 'b'], value: 1 }], 'str', [[0, 'append.target_not_object']]);
  });
});

describe('remove op', () => {
  test('removes a key; a missing key is a silent success', async (t) => {
    const w = worker(t, env.server);
    await expectOps(w, { a: 1, b: 2 }, [{ type: 'remove', path: 'a' }], { b: 2 });
    await expectOps(w, { a: 1 }, [{ type: 'remove', path: 'zz' }], { a: 1 });
  });

  test('root remove writes null (the item is not deleted)', async (t) => {
    const w = worker(t, env.server);
    const { r, key } = await applyOps(w, { a: 1 }, [{ type: 'remove', path: '' }]);
    assert.deepEqual(r, { old_value: { a: 1 }, new_value: null });
    assert.strictEqual(await call(w, 'stream::get', key), null);
    assert.deepEqual(await call(w, 'stream::list', { stream_name: key.stream_name, group_id: 'g' }), [null]);
  });

  test('target not an object → remove.target_not_object', async (t) => {
    const w = worker(t, env.server);
    await expectOps(w, [1], [{ type: 'remove', path: 'a' }], [1], [[0, 'remove.target_not_object']]);
  });
});

describe('path validation (§4.3)', () => {
  test('too deep, empty segment, segment too long, prototype pollution', async (t) => {
    const w = worker(t, env.server);
    const deep = Array.from({ length: 33 }, (_, i) => `s${i}`);
    await expectOps(w, {}, [{ type: 'merge', path: deep, value: { a: 1 } }], {}, [[0, 'merge.path.too_deep']]);
    await expectOps(w, {}, [{ type: 'append', path: deep, value: 1 }], {}, [[0, 'append.path.too_deep']]);
    const deep32 = deep.slice(0, 32);
    await expectOps(
      w,
      {},
      [{ type: 'merge', path: deep32, value: { a: 1 } }],
      deep32.reduceRight((acc, seg) => ({ [seg]: acc }), { a: 1 }),
    );
    await expectOps(w, {}, [{ type: 'merge', path: [''], value: { a: 1 } }], {}, [[0, 'merge.path.empty_segment']]);
    await expectOps(w, {}, [{ type: 'append', path: ['a', ''], value: 1 }], {}, [[0, 'append.path.empty_segment']]);
    const long = 'k'.repeat(257);
    await expectOps(w, {}, [{ type: 'set', path: long, value: 1 }], {}, [[0, 'set.path.segment_too_long']]);
    await expectOps(w, {}, [{ type: 'increment', path: long, by: 1 }], {}, [[0, 'increment.path.segment_too_long']]);
    await expectOps(w, {}, [{ type: 'set', path: 'k'.repeat(256), value: 1 }], { ['k'.repeat(256)]: 1 });
    await expectOps(w, {}, [{ type: 'set', path: '__proto__', value: 1 }], {}, [[0, 'set.path.proto_polluted']]);
    await expectOps(w, {}, [{ type: 'decrement', path: 'constructor', by: 1 }], {}, [[0, 'decrement.path.proto_polluted']]);
    await expectOps(w, {}, [{ type: 'merge', path: ['a', 'prototype'], value: { x: 1 } }], {}, [[0, 'merge.path.proto_polluted']]);
    await expectOps(w, { a: 1 }, [{ type: 'remove', path: 'prototype' }], { a: 1 }, [[0, 'remove.path.proto_polluted']]);
  });

  test('failing ops are skipped; earlier and later ops still apply; op_index is 0-based', async (t) => {
    const w = worker(t, env.server);
    await expectOps(
      w,
      { n: 1 },
      [
        { type: 'increment', path: 'n', by: 1 },
        { type: 'set', path: '__proto__', value: 1 },
        { type: 'append', path: 'n', value: 'x' },
        { type: 'set', path: 'done', value: true },
        { type: 'remove', path: 'constructor' },
      ],
      { n: 2, done: true },
      [
        [1, 'set.path.proto_polluted'],
        [2, 'append.type_mismatch'],
        [4, 'remove.path.proto_polluted'],
      ],
    );
  });
});

describe('malformed ops → deserialization_error, nothing written (§4.1)', () => {
  const bad = [
    ['unknown type', { type: 'nope', path: 'a' }],
    ['capitalised type', { type: 'Set', path: 'a', value: 1 }],
    ['missing type', { path: 'a', value: 1 }],
    ['set with array path', { type: 'set', path: ['a'], value: 1 }],
    ['set without path', { type: 'set', value: 1 }],
    ['increment without by', { type: 'increment', path: 'n' }],
    ['increment with float by', { type: 'increment', path: 'n', by: 1.5 }],
    ['increment with string by', { type: 'increment', path: 'n', by: '1' }],
    ['decrement with huge by', { type: 'decrement', path: 'n', by: 1e20 }],
    ['increment with array path', { type: 'increment', path: ['n'], by: 1 }],
    ['remove without path', { type: 'remove' }],
    ['merge without value', { type: 'merge', path: 'a' }],
    ['append without value', { type: 'append', path: 'a' }],
    ['merge with non-string path element', { type: 'merge', path: ['a', 1], value: {} }],
    ['merge with numeric path', { type: 'merge', path: 5, value: {} }],
    ['op that is not an object', 'set'],
  ];
  for (const [name, op] of bad) {
    test(name, async (t) => {
      const w = worker(t, env.server);
      const key = { stream_name: uid('bad-op'), group_id: 'g', item_id: 'i' };
      await call(w, 'stream::set', { ...key, data: { n: 1, a: 'x' } });
      // a valid op before the malformed one must not be applied either
      const e = await callErr(w, 'stream::update', { ...key, ops: [{ type: 'set', path: 'touched', value: true }, op] });
      assert.equal(e.code, 'deserialization_error');
      assert.ok(e.message.startsWith('Failed to deserialize input for stream::update'), e.message);
      assert.deepEqual(await call(w, 'stream::get', key), { n: 1, a: 'x' });
    });
  }

  test('missing item stays missing after a malformed update', async (t) => {
    const w = worker(t, env.server);
    const key = { stream_name: uid('bad-op-missing'), group_id: 'g', item_id: 'i' };
    const e = await callErr(w, 'stream::update', { ...key, ops: [{ type: 'increment', path: 'n', by: 0.5 }] });
    assert.equal(e.code, 'deserialization_error');
    assert.strictEqual(await call(w, 'stream::get', key), undefined);
    assert.deepEqual(await call(w, 'stream::list_groups', { stream_name: key.stream_name }), []);
  });

  test('missing ops field, ops not an array', async (t) => {
    const w = worker(t, env.server);
    const key = { stream_name: uid('bad-ops'), group_id: 'g', item_id: 'i' };
    for (const payload of [{ ...key }, { ...key, ops: {} }, { ...key, ops: null }, { ...key, ops: 'set' }]) {
      const e = await callErr(w, 'stream::update', payload);
      assert.equal(e.code, 'deserialization_error', JSON.stringify(payload));
    }
    assert.strictEqual(await call(w, 'stream::get', key), undefined);
  });
});

describe('number kinds (raw client: JSON text precision is invisible to JavaScript numbers)', () => {
  test('`by: 1.0` is a decode error; 2.0 stays 2.0; i64 max + 1 becomes u64 (§1, §4.1, §4.5)', async (t) => {
    const c = await rawEngine(t, env.server);
    const s = uid('numkind');
    const send = async (fn, dataText) => {
      const id = crypto.randomUUID();
      c.sendText(`{"type":"invokefunction","invocation_id":"${id}","function_id":"${fn}","data":${dataText}}`);
      const msg = await c.waitMessage((m) => m?.type === 'invocationresult' && m.invocation_id === id, { what: fn });
      return { msg, text: c.textOf(msg) };
    };
    const key = `"stream_name":"${s}","group_id":"g","item_id":"i"`;
    let r = await send('stream::set', `{${key},"data":{"f":2.0,"big":9223372036854775807,"neg":-9223372036854775808}}`);
    assert.equal(r.msg.error, undefined, JSON.stringify(r.msg));
    r = await send('stream::get', `{${key}}`);
    assert.match(r.text, /"f"\s*:\s*2\.0\b/, `float kind lost: ${r.text}`);
    assert.match(r.text, /"big"\s*:\s*9223372036854775807\b/, r.text);
    assert.match(r.text, /"neg"\s*:\s*-9223372036854775808\b/, r.text);

    r = await send('stream::update', `{${key},"ops":[{"type":"increment","path":"f","by":1.0}]}`);
    assert.equal(r.msg.error?.code, 'deserialization_error', r.text);

    r = await send('stream::update', `{${key},"ops":[{"type":"increment","path":"big","by":1}]}`);
    assert.equal(r.msg.error, undefined, r.text);
    assert.match(r.text, /"big"\s*:\s*9223372036854775808\b/, `i64::MAX + 1 should be the unsigned 2^63: ${r.text}`);

    r = await send('stream::update', `{${key},"ops":[{"type":"increment","path":"f","by":1}]}`);
    assert.match(r.text, /"f"\s*:\s*3\.0\b/, `float + int stays float: ${r.text}`);

    r = await send('stream::update', `{${key},"ops":[{"type":"decrement","path":"neg","by":1}]}`);
    assert.equal(r.msg.result?.errors?.[0]?.code, 'decrement.not_number', `i64::MIN - 1 overflows: ${r.text}`);

    r = await send('stream::update', `{"stream_name":"${s}","group_id":"g","item_id":"m","ops":[{"type":"decrement","path":"","by":-9223372036854775808}]}`);
    assert.match(r.text, /"new_value"\s*:\s*9223372036854775808\b/, `missing root decrement by i64::MIN: ${r.text}`);

    r = await send('stream::update', `{${key},"ops":[{"type":"increment","path":"big","by":9223372036854775808}]}`);
    assert.equal(r.msg.error?.code, 'deserialization_error', `by outside i64 is a decode error: ${r.text}`);
  });
});

