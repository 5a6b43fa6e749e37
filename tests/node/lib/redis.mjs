// The Redis the adapter tests share: database 12 of 127.0.0.1:6379 unless REDIS_TEST_URL says
// otherwise. Tests put a unique token in every name they use and delete what holds it at the end.
import { execFileSync } from 'node:child_process';

export const REDIS_URL = process.env.REDIS_TEST_URL ?? 'redis://127.0.0.1:6379/12';

/** The `stream` options of a server on that Redis. */
export const onRedis = { stream: { adapter: { name: 'redis', config: { store_method: undefined, redis_url: REDIS_URL } } } };

export function redisCli(...args) {
  const url = new URL(REDIS_URL);
  const db = url.pathname.replace('/', '') || '0';
  return execFileSync('redis-cli', ['-h', url.hostname, '-p', url.port || '6379', '-n', db, ...args], {
    encoding: 'utf8',
  });
}

/** Deletes every key whose name holds `token`, and the streams index entries that do. */
export function cleanupRedis(token) {
  const keys = redisCli('--scan', '--pattern', `*${token}*`).split('\n').filter(Boolean);
  for (const key of keys) redisCli('DEL', key);
  const streams = redisCli('SMEMBERS', 'iii-stream:streams').split('\n');
  for (const s of streams.filter((s) => s.includes(token))) redisCli('SREM', 'iii-stream:streams', s);
}
