// Restarts with the durable kv store (improvements.md i): a Motia Node client
// (@motiadev/stream-client-node) that was subscribed before the server stopped reconnects by
// itself after the restart (clients.md §2.5.2) and gets a sync equal to the data before it, in the
// same order, after a clean stop (SIGTERM) and after a crash (SIGKILL).
//
// The server runs with `store_method: file_based` in a temporary directory and is started again
// on the same ports and directory. Writers are iii-sdk@0.22.1 workers.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Stream } from '@motiadev/stream-client-node';
import { call, freePort, startServer, uid, waitFor, worker } from './lib/server.mjs';

/**
 * A Motia Stream whose sockets never throw: the Node client registers no 'error' listener, so a
 * reconnect attempt that finds the port closed would otherwise kill the test process.
 */
async function openStream(url) {
  const stream = new Stream(url);
  const guard = (adapter) => adapter.ws.on('error', () => {});
  guard(stream.ws);
  const factory = stream.adapterFactory;
  stream.adapterFactory = () => {
    const adapter = factory();
    guard(adapter);
    return adapter;
  };
  await waitFor(() => stream.ws.isOpen(), { message: `Motia Stream did not open on ${url}` });
  return stream;
}

/** Close for good: once open, close and cancel the client's automatic reconnects. */
async function closeStream(stream) {
  await waitFor(() => stream.ws.isOpen(), { timeoutMs: 5000 }).catch(() => {});
  stream.close();
  stream.onSocketClose = () => {};
  stream.createSocket = () => stream.ws;
}

/** Every state a subscription's change listeners were given (the first is the sync). */
function track(sub) {
  const states = [];
  sub.addChangeListener((state) => states.push(structuredClone(state)));
  return states;
}

async function twoPorts() {
  const a = await freePort();
  let b = await freePort();
  while (b === a) b = await freePort();
  return [a, b];
}

describe('durability: a restart keeps what subscribers see', () => {
  let storeDir;
  before(() => {
    storeDir = mkdtempSync(path.join(os.tmpdir(), 'iii-stream-durable-'));
  });
  after(() => rmSync(storeDir, { recursive: true, force: true }));

  for (const signal of ['SIGTERM', 'SIGKILL']) {
    test(`a Motia client reconnecting after a restart (${signal}) gets a sync equal to the data before it`, async (t) => {
      const opts = {
        ports: await twoPorts(),
        stream: { adapter: { name: 'kv', config: { store_method: 'file_based', file_path: storeDir } } },
      };
      let server = await startServer(opts);
      t.after(() => server.stop());

      const s = uid('durable');
      const g = 'room:1/é';
      const w = worker(null, server);
      const set = (id, v) => call(w, 'stream::set', { stream_name: s, group_id: g, item_id: id, data: { id, v } });
      for (const [id, v] of [['a', 1], ['b', 2], ['c', 3], ['d', 4], ['a', 5]]) await set(id, v);
      await call(w, 'stream::delete', { stream_name: s, group_id: g, item_id: 'b' });
      await set('b', 6);
      await call(w, 'stream::update', {
        stream_name: s,
        group_id: g,
        item_id: 'c',
        ops: [{ type: 'merge', path: 'nested', value: { deep: [1, 2.5, null] } }],
      });
      const data = await call(w, 'stream::list', { stream_name: s, group_id: g });
      assert.deepEqual(
        data.map((v) => v.id),
        ['a', 'c', 'd', 'b'],
        'insertion order: overwrite keeps the place, re-creation moves to the end',
      );
      await w.shutdown();

      const stream = await openStream(server.streamUrl);
      t.after(() => closeStream(stream));
      const group = track(stream.subscribeGroup(s, g));
      const item = track(stream.subscribeItem(s, g, 'c'));
      await waitFor(() => group.length > 0 && item.length > 0, { message: 'no sync before the restart' });
      assert.deepEqual(group.at(-1), data);
      const seenBefore = [group.length, item.length];

      if (signal === 'SIGTERM') {
        server.kill('SIGTERM');
        assert.equal((await server.waitExit()).code, 0, 'a clean stop exits with 0');
      } else {
        server.kill('SIGKILL');
        await server.waitExit();
      }
      await server.stop();
      server = await startServer(opts);

      // The client reconnects 2 s after its socket closed, re-joins and gets a fresh sync.
      await waitFor(() => group.length > seenBefore[0] && item.length > seenBefore[1], {
        timeoutMs: 15000,
        message: () => `no sync after the restart: group states ${JSON.stringify(group)}`,
      });
      assert.deepEqual(group.at(-1), data, 'group sync after the restart');
      assert.deepEqual(item.at(-1), data[1], 'item sync after the restart');

      const reader = worker(null, server);
      assert.deepEqual(await call(reader, 'stream::list', { stream_name: s, group_id: g }), data);
      assert.ok((await call(reader, 'stream::list_groups', { stream_name: s })).includes(g));
      await reader.shutdown();
    });
  }
});
