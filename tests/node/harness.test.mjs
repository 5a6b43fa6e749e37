// Self-checks of the test harness (no server needed).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { binaryPath, buildConfig, deepMerge, startServer, toYaml } from './lib/server.mjs';

describe('harness', () => {
  test('a missing binary gives a clear error naming the path and how to build it', async () => {
    const saved = process.env.III_STREAM_BIN;
    process.env.III_STREAM_BIN = '/nonexistent/dir/iii-stream';
    try {
      assert.equal(binaryPath(), '/nonexistent/dir/iii-stream');
      await assert.rejects(startServer(), (e) => {
        assert.match(e.message, /iii-stream binary not found or not executable at \/nonexistent\/dir\/iii-stream/);
        assert.match(e.message, /cargo build/);
        assert.match(e.message, /III_STREAM_BIN/);
        return true;
      });
    } finally {
      if (saved === undefined) delete process.env.III_STREAM_BIN;
      else process.env.III_STREAM_BIN = saved;
    }
  });

  test('deepMerge merges objects, replaces arrays and scalars, deletes on undefined', () => {
    assert.deepEqual(
      deepMerge({ a: { b: 1, c: [1] }, d: 1, e: 2 }, { a: { c: [2], x: { y: 1 } }, d: undefined, e: { z: 1 } }),
      { a: { b: 1, c: [2], x: { y: 1 } }, e: { z: 1 } },
    );
  });

  test('generated config has both workers and the test overrides', () => {
    const cfg = buildConfig(
      { enginePort: 1111, streamPort: 2222 },
      { stream: { timeouts: { trigger_ms: 5 }, fail_closed: true }, workers: [{ name: 'iii-state', config: {} }] },
    );
    assert.deepEqual(cfg, {
      workers: [
        { name: 'iii-worker-manager', config: { host: '127.0.0.1', port: 1111 } },
        {
          name: 'iii-stream',
          config: {
            host: '127.0.0.1',
            port: 2222,
            adapter: { name: 'kv', config: { store_method: 'in_memory' } },
            timeouts: { trigger_ms: 5 },
            fail_closed: true,
          },
        },
        { name: 'iii-state', config: {} },
      ],
    });
    const yaml = toYaml(cfg);
    assert.match(yaml, /^workers:\n {2}- name: "iii-worker-manager"\n {4}config:\n {6}host: "127\.0\.0\.1"\n {6}port: 1111\n/);
    assert.match(yaml, /\n {6}adapter:\n {8}name: "kv"\n {8}config:\n {10}store_method: "in_memory"\n/);
    assert.match(yaml, /\n {2}- name: "iii-state"\n {4}config: \{\}\n$/);
  });
});
