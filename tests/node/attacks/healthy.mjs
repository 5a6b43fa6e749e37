// The healthy worker of the attack suite, in a process of its own so that the attacker's work in
// the test process cannot delay its event loop: it calls stream::set then stream::get back to
// back (2 ms apart) until its stdin closes, then prints {p50, p99, calls, failures} (ms).
//
// Usage: node healthy.mjs <engine url>
import { Caller, open, percentile } from './scenarios.mjs';

const url = process.argv[2];
const caller = new Caller(await open(url));
const latencies = [];
let failures = 0;
let running = true;
process.stdin.on('end', () => (running = false));
process.stdin.resume();
process.stdout.write('READY\n');
let n = 0;
while (running) {
  const started = performance.now();
  const set = await caller.call('stream::set', { stream_name: 'healthy', group_id: 'g', item_id: 'i', data: { n } });
  const got = await caller.call('stream::get', { stream_name: 'healthy', group_id: 'g', item_id: 'i' });
  if (set.error || got.error || got.result?.n !== n) failures += 1;
  latencies.push(performance.now() - started);
  n += 1;
  await new Promise((r) => setTimeout(r, 2));
}
caller.close();
process.stdout.write(`${JSON.stringify({ p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99), calls: latencies.length, failures })}\n`);
process.exit(0);
