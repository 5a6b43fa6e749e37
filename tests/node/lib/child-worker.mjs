// A worker in its own process, used by invocation.test.mjs to kill a callee mid-call.
// Usage: node child-worker.mjs <engineUrl> <functionId>
// Registers <functionId> with a handler that never answers; prints "READY" once the
// registration is in effect (round trip on the same connection) and "CALLED <json>" when invoked.
import { registerWorker } from 'iii-sdk';

const [engineUrl, functionId] = process.argv.slice(2);
if (!engineUrl || !functionId) {
  console.error('usage: child-worker.mjs <engineUrl> <functionId>');
  process.exit(2);
}
console.debug = () => {};

const w = registerWorker(engineUrl, {
  workerName: `e2e-child-${process.pid}`,
  enableMetricsReporting: false,
  otel: { enabled: false },
});
w.registerFunction(functionId, (input) => {
  process.stdout.write(`CALLED ${JSON.stringify(input)}\n`);
  return new Promise(() => {}); // never answers
});
await w.trigger({ function_id: 'stream::list_groups', payload: { stream_name: '__e2e_roundtrip__' } });
process.stdout.write('READY\n');
// keep running until killed
setInterval(() => {}, 1 << 30);
