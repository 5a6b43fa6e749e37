// A Motia stream client in its own process, driven by lib/motia.mjs spawnProbe().
//
// Usage: node [--experimental-websocket] motia-probe.mjs '<json config>'
//   config.client: 'node' (@motiadev/stream-client-node) or 'browser'
//                  (@motiadev/stream-client-browser over the platform WebSocket; the process must
//                  have a global WebSocket: Node 22+, or Node 20 with --experimental-websocket)
//   config.url, config.protocols (optional)
//   config.subs: [{kind: 'group'|'item', stream, group, id?, events?: [type, …]}]
// Nothing guards the client: an unhandled error kills this process (that is what some tests check).
//
// stdout, one JSON object per line:
//   {ev:'socket', n}            the client created its n-th socket (n from 1)
//   {ev:'open', n, protocol}    socket n opened (protocol = the selected subprotocol)
//   {ev:'close', n}             socket n closed
//   {ev:'frame', n, frame}      a parsed frame received on socket n
//   {ev:'state', sub, state}    subscription `sub` (index in config.subs) changed state
//   {ev:'event', sub, type, data}
// stdin, one JSON object per line: {cmd:'close-sub', sub} | {cmd:'close'} | {cmd:'exit'}.
// The process exits on {cmd:'exit'} or when stdin ends.
import readline from 'node:readline';

const config = JSON.parse(process.argv[2] ?? '{}');
const out = (obj) => process.stdout.write(`${JSON.stringify(obj)}\n`);

let Stream;
if (config.client === 'browser') {
  if (typeof globalThis.WebSocket === 'undefined') {
    process.stderr.write('no platform WebSocket (run with --experimental-websocket)\n');
    process.exit(3);
  }
  ({ Stream } = await import('@motiadev/stream-client-browser'));
} else {
  ({ Stream } = await import('@motiadev/stream-client-node'));
}

const stream = config.protocols ? new Stream(config.url, { protocols: config.protocols }) : new Stream(config.url);
let sockets = 0;
const instrument = (adapter) => {
  const n = ++sockets;
  const ws = adapter.ws;
  out({ ev: 'socket', n });
  ws.addEventListener('open', () => out({ ev: 'open', n, protocol: ws.protocol }));
  ws.addEventListener('close', () => out({ ev: 'close', n }));
  ws.addEventListener('message', (e) => {
    let frame;
    try {
      frame = JSON.parse(typeof e.data === 'string' ? e.data : String(e.data));
    } catch {
      frame = { unparsable: String(e.data) };
    }
    out({ ev: 'frame', n, frame });
  });
};
instrument(stream.ws);
const factory = stream.adapterFactory;
stream.adapterFactory = () => {
  const adapter = factory();
  instrument(adapter);
  return adapter;
};

const subs = (config.subs ?? []).map((spec, i) => {
  const sub = spec.kind === 'item' ? stream.subscribeItem(spec.stream, spec.group, spec.id) : stream.subscribeGroup(spec.stream, spec.group);
  sub.addChangeListener((state) => out({ ev: 'state', sub: i, state }));
  for (const type of spec.events ?? []) sub.onEvent(type, (data) => out({ ev: 'event', sub: i, type, data }));
  return sub;
});

function exit() {
  try {
    stream.close();
  } catch {
    /* ignore */
  }
  process.exit(0);
}

const rl = readline.createInterface({ input: process.stdin });
rl.on('line', (line) => {
  if (!line.trim()) return;
  const cmd = JSON.parse(line);
  if (cmd.cmd === 'close-sub') subs[cmd.sub].close();
  else if (cmd.cmd === 'close') stream.close();
  else if (cmd.cmd === 'exit') exit();
});
rl.on('close', exit);
