// Runs the attacks at full size against a binary and prints one JSON line per attack:
//
//   III_STREAM_BIN=target/release/iii-stream node tests/node/attacks/measure.mjs [--legacy] [name ...]
//
// Each attack gets a fresh server (in-memory store). `--legacy` starts it with only the
// configuration keys every version understands, to measure a binary from before the bounds
// (docs/limits.md lists the figures and how they were taken).
import { startServer } from '../lib/server.mjs';
import * as a from './scenarios.mjs';

const args = process.argv.slice(2);
const legacy = args.includes('--legacy');
const only = args.filter((x) => !x.startsWith('--'));

/** Server options: the attacks' own timing needs, plus generous limits a new binary takes. */
function options(extra = {}) {
  const stream = {
    history: { max_age_ms: 2000 },
    timeouts: { join_ms: 200 },
    ...(legacy ? {} : { limits: { joins_per_second: 1_000_000, join_burst: 1_000_000, write_timeout_ms: 2000 } }),
    ...extra.stream,
  };
  return { stream, engine: extra.engine ?? {} };
}

const attacks = {
  'join-leave': () => [options(), (s) => a.joinLeave(s, { cycles: 200_000 })],
  'join-write-leave': () => [options(), (s) => a.joinLeave(s, { cycles: 200_000, writes: true })],
  'set-delete': () => [options(), (s) => a.freshGroups(s, { groups: 600_000 })],
  send: () => [options(), (s) => a.freshGroups(s, { groups: 600_000, op: 'send' })],
  'non-reading': () => [options(), (s) => a.nonReading(s, { calls: 1_000_000 })],
  flood: () => [options(), (s) => a.flood(s, { calls: 1_000_000 })],
  'hung-function': () => [options(), (s) => a.hungFunction(s, { calls: 200_000 })],
  'hung-join': () => [options(), (s) => a.hungJoin(s, { joins: 15_000, connections: 200 })],
  'idle-workers': () => [options(), (s) => a.idleWorkers(s, { count: 5000 }), { plain: true }],
  'path-bound': () => [options(), (s) => a.pathBound(s), { plain: true }],
  'big-group-non-readers': () => [options(), (s) => a.bigGroupNonReaders(s, { subscribers: 50, items: 12, withinMs: 20_000 }), { plain: true }],
};

for (const [name, make] of Object.entries(attacks)) {
  if (only.length && !only.includes(name)) continue;
  const [opts, attack, { plain } = {}] = make();
  const server = await startServer(opts);
  try {
    const baseline = await a.unloaded(server);
    // After the attack the server idles past history.max_age_ms and a sweep (2 s + 1 s).
    const figures = plain ? await attack(server) : await a.measured(server, () => attack(server), { after: () => a.delayMs(4000) });
    const rss = plain ? { rss_after_mb: (await a.settledRss(server)) / a.MB } : {};
    console.log(JSON.stringify({ attack: name, legacy, unloaded_p99_ms: baseline.p99, ...figures, ...rss }));
  } catch (error) {
    console.log(JSON.stringify({ attack: name, legacy, error: String(error?.stack ?? error) }));
  } finally {
    await server.stop();
  }
}
