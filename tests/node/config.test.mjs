// Startup configuration (stream.md §9, improvements m): each test starts its own server.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { call, startServer, worker } from './lib/server.mjs';

const BASE = `workers:
  - name: iii-worker-manager
    config:
      host: 127.0.0.1
      port: {{enginePort}}
  - name: iii-stream
    config:
      host: 127.0.0.1
      port: {{streamPort}}
      adapter:
        name: kv
        config:
          store_method: in_memory
`;

async function expectStartupFailure(t, opts, pattern) {
  const s = await startServer({ ...opts, waitReady: false });
  t.after(() => s.stop());
  const exit = await s.waitExit({ timeoutMs: 10000 });
  assert.notEqual(exit.code, 0, `expected a startup failure, got ${JSON.stringify(exit)}`);
  assert.equal(exit.signal, null, `the server must exit with an error, not die from a signal: ${s.stderr()}`);
  assert.match(s.stderr() + s.stdout(), pattern);
  assert.doesNotMatch(s.stderr(), /panicked at/, 'startup errors must not be panics');
}

describe('configuration', () => {
  test('unknown entries in workers are warned about and ignored; the server serves', async (t) => {
    const s = await startServer({ workers: [{ name: 'iii-state', config: { adapter: { name: 'kv' } } }, { name: 'iii-queue' }] });
    t.after(() => s.stop());
    const w = worker(t, s);
    assert.deepEqual(await call(w, 'stream::list_all', {}), { stream: [], count: 0 });
  });

  test('an unknown top-level key is a startup error naming the key', async (t) => {
    await expectStartupFailure(t, { rawConfig: `${BASE}bogus_top_level: 1\n` }, /bogus_top_level/);
  });

  test('an unknown iii-stream key is a startup error naming the key', async (t) => {
    await expectStartupFailure(t, { stream: { no_such_option: true } }, /no_such_option/);
  });

  test('an unknown key inside timeouts is a startup error naming the key', async (t) => {
    await expectStartupFailure(t, { stream: { timeouts: { trigger_msec: 5 } } }, /trigger_msec/);
  });

  test('the bridge adapter is not supported', async (t) => {
    await expectStartupFailure(t, { stream: { adapter: { name: 'bridge', config: {} } } }, /bridge/);
  });

  test('an unknown kv store_method is a startup error', async (t) => {
    await expectStartupFailure(t, { stream: { adapter: { name: 'kv', config: { store_method: 'carrier_pigeon' } } } }, /carrier_pigeon|store_method/);
  });

  test('${VAR:default} interpolation: env value wins, default applies, missing variable fails clearly', async (t) => {
    const raw = BASE.replace('port: {{streamPort}}', 'port: ${E2E_STREAM_PORT:{{streamPort}}}').replace(
      'store_method: in_memory',
      'store_method: ${E2E_STORE_METHOD:in_memory}',
    );
    const s = await startServer({ rawConfig: raw, env: { E2E_STORE_METHOD: 'in_memory' } });
    t.after(() => s.stop());
    const w = worker(t, s);
    assert.deepEqual(await call(w, 'stream::list_groups', { stream_name: 'x' }), []);
    await expectStartupFailure(t, { rawConfig: `${BASE.replace('host: 127.0.0.1', 'host: ${E2E_SURELY_UNSET_VARIABLE}')}` }, /E2E_SURELY_UNSET_VARIABLE/);
  });

  test('`modules` is an alias appended to `workers`', async (t) => {
    const raw = `workers:
  - name: iii-worker-manager
    config:
      host: 127.0.0.1
      port: {{enginePort}}
modules:
  - name: iii-stream
    config:
      host: 127.0.0.1
      port: {{streamPort}}
      adapter:
        name: kv
        config:
          store_method: in_memory
`;
    const s = await startServer({ rawConfig: raw });
    t.after(() => s.stop());
    const w = worker(t, s);
    assert.deepEqual(await call(w, 'stream::list_groups', { stream_name: 'x' }), []);
  });
});
