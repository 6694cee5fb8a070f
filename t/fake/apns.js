#!/usr/bin/env node
// t/fake/apns.js: a fake Apple Push Notification service for herald's
// tests and benchmark. TLS + ALPN h2 only (node's built-in http2, no npm),
// the request rules, JWT checks and error bodies of protocols.md section 1
// (checklist 1.10), and per-token fault injection.
//
//   node t/fake/apns.js --cert server.pem --key server.key \
//       --jwt KEYID:TEAMID:pub.pem [--jwt ...] [--topic com.example.app ...] \
//       [--client-ca ca.pem] [--log received.jsonl] [--port-file F] \
//       [--port 0] [--initial-streams 1] [--max-streams 1000] \
//       [--goaway-after N] [--drop-after N] [--latency-ms N] [--quiet-log]
//
// Prints "port=N" on stdout once listening (and writes N to --port-file).
// Every accepted notification is one JSON line in --log:
//   {"conn":C,"stream":S,"token":T,"kid":K,"headers":{apns-*},
//    "payload":{...},"concurrent":N,"limit":L,"at":ms}
// Other events are lines with "event": "connect", "goaway", "violation".
//
// Token auth: a connection is tied to the key id of its first valid token
// (403 UnrelatedKeyIdInToken otherwise); it starts at --initial-streams
// concurrent streams and is raised to --max-streams by a new SETTINGS
// after the first request with a valid token, like APNs. A verified JWT is
// cached (as APNs does), so signature checks cost little in benchmarks.
//
// Scripted device tokens (hex, like real ones), by prefix:
//   0410 410 Unregistered (+timestamp)    0400 400 BadDeviceToken
//   0401 400 DeviceTokenNotForTopic       0429 429 TooManyRequests once
//   0500 500 InternalServerError once     0503 503 ServiceUnavailable once
//   0403 403 ExpiredProviderToken once    0ef0 RST_STREAM REFUSED_STREAM once
//   0ff0 never answered                   0413 413 PayloadTooLarge
// "once" is per token: the next attempt gets 200. 429/503 carry
// retry-after: 1.
'use strict';

const http2 = require('http2');
const crypto = require('crypto');
const fs = require('fs');

const opt = {
  jwt: [], topic: [], port: 0, initialStreams: 1, maxStreams: 1000,
  goawayAfter: 0, dropAfter: 0, latencyMs: 0,
};
for (let i = 2; i < process.argv.length; i++) {
  const a = process.argv[i];
  const v = () => process.argv[++i];
  switch (a) {
    case '--cert': opt.cert = v(); break;
    case '--key': opt.key = v(); break;
    case '--jwt': opt.jwt.push(v()); break;
    case '--topic': opt.topic.push(v()); break;
    case '--client-ca': opt.clientCa = v(); break;
    case '--log': opt.log = v(); break;
    case '--port-file': opt.portFile = v(); break;
    case '--port': opt.port = +v(); break;
    case '--initial-streams': opt.initialStreams = +v(); break;
    case '--max-streams': opt.maxStreams = +v(); break;
    case '--goaway-after': opt.goawayAfter = +v(); break;
    case '--drop-after': opt.dropAfter = +v(); break;
    case '--latency-ms': opt.latencyMs = +v(); break;
    default: console.error('unknown option ' + a); process.exit(2);
  }
}

// kid -> {team, key}
const keys = new Map();
for (const spec of opt.jwt) {
  const [kid, team, file] = spec.split(':');
  keys.set(kid, { team, key: crypto.createPublicKey(fs.readFileSync(file)) });
}

let out = null;
if (opt.log) out = fs.createWriteStream(opt.log, { flags: 'a' });
function record(obj) {
  if (out) out.write(JSON.stringify(obj) + '\n');
}

const verified = new Map(); // jwt string -> {kid, iat}
const attempts = new Map(); // device token -> count
let nconn = 0;

function b64urlJson(s) {
  return JSON.parse(Buffer.from(s, 'base64url').toString('utf8'));
}

// Returns {kid, iat} or a reason string.
function checkJwt(auth) {
  if (!auth) return 'MissingProviderToken';
  const m = /^bearer (.+)$/i.exec(auth);
  if (!m) return 'InvalidProviderToken';
  const jwt = m[1];
  let v = verified.get(jwt);
  if (!v) {
    const parts = jwt.split('.');
    if (parts.length !== 3) return 'InvalidProviderToken';
    let h, c;
    try { h = b64urlJson(parts[0]); c = b64urlJson(parts[1]); }
    catch (e) { return 'InvalidProviderToken'; }
    if (h.alg !== 'ES256' || typeof h.kid !== 'string') return 'InvalidProviderToken';
    const k = keys.get(h.kid);
    if (!k || c.iss !== k.team || !Number.isInteger(c.iat)) return 'InvalidProviderToken';
    const sig = Buffer.from(parts[2], 'base64url');
    if (sig.length !== 64) return 'InvalidProviderToken'; // raw r||s, not DER
    const ok = crypto.verify('sha256', Buffer.from(parts[0] + '.' + parts[1]),
      { key: k.key, dsaEncoding: 'ieee-p1363' }, sig);
    if (!ok) return 'InvalidProviderToken';
    v = { kid: h.kid, iat: c.iat };
    verified.set(jwt, v);
  }
  const now = Date.now() / 1000;
  if (v.iat < now - 3600) return 'ExpiredProviderToken';
  if (v.iat > now + 300) return 'InvalidProviderToken';
  return v;
}

const PUSH_TYPES = new Set(['alert', 'background', 'location', 'voip',
  'complication', 'fileprovider', 'mdm', 'liveactivity', 'pushtotalk', 'widgets']);
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

const options = {
  cert: fs.readFileSync(opt.cert),
  key: fs.readFileSync(opt.key),
  ALPNProtocols: ['h2'],
  minVersion: 'TLSv1.2',
  settings: { maxConcurrentStreams: opt.initialStreams, initialWindowSize: 65535 },
  maxSessionMemory: 100,
};
if (opt.clientCa) {
  options.ca = fs.readFileSync(opt.clientCa);
  options.requestCert = true;
  options.rejectUnauthorized = false;
}
const server = http2.createSecureServer(options);

server.on('session', (session) => {
  const st = {
    id: ++nconn, kid: null, raised: false, active: 0, limit: opt.initialStreams,
    served: 0, goawayId: 0,
  };
  session.apns = st;
  record({ event: 'connect', conn: st.id, at: Date.now() });
  session.on('error', () => {});
  session.on('stream', (stream, headers) => {
    stream.on('error', () => {});
    st.active++;
    stream.on('close', () => { st.active--; });
    if (st.goawayId && stream.id > st.goawayId) return; // not processed
    if (st.active > st.limit) {
      record({ event: 'violation', conn: st.id, active: st.active, limit: st.limit });
      session.goaway(http2.constants.NGHTTP2_REFUSED_STREAM, stream.id - 2,
        Buffer.from('Maximum active streams violated for this endpoint.'));
      stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
      return;
    }
    const chunks = [];
    let size = 0;
    stream.on('data', (d) => { size += d.length; if (size <= 8192) chunks.push(d); });
    stream.on('end', () => handle(session, st, stream, headers, Buffer.concat(chunks), size));
  });
});

function reply(stream, status, reason, id, extra) {
  if (stream.destroyed || stream.closed) return;
  const h = { ':status': status, 'apns-id': id || crypto.randomUUID() };
  Object.assign(h, extra || {});
  if (!reason) {
    stream.respond(h, { endStream: true });
    return;
  }
  const body = { reason };
  if (status === 410) body.timestamp = Date.now();
  h['content-type'] = 'application/json';
  stream.respond(h);
  stream.end(JSON.stringify(body));
}

function handle(session, st, stream, h, body, size) {
  // stopping: the log is closing, so a 200 now could not be recorded and
  // would look like a delivery the fake never had; refuse (not processed)
  if (quitting) return stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
  const id = h['apns-id'];
  const fail = (status, reason, extra) => reply(stream, status, reason, id, extra);

  // above our GOAWAY's last stream id: not processed, never answered; the
  // client must replay it on another connection
  if (st.goawayId && stream.id > st.goawayId) return;

  if (h[':method'] !== 'POST') return fail(405, 'MethodNotAllowed');
  const m = /^\/3\/device\/(.*)$/.exec(h[':path'] || '');
  if (!m) return fail(404, 'BadPath');
  const token = m[1];
  if (token === '') return fail(400, 'MissingDeviceToken');
  if (!/^[0-9a-fA-F]{16,200}$/.test(token)) return fail(400, 'BadDeviceToken');
  if (id !== undefined && !UUID.test(id)) return fail(400, 'BadMessageId');

  // auth: a client certificate, or a provider token
  let kid = null;
  const certAuth = opt.clientCa && stream.session.socket.authorized;
  if (!certAuth) {
    const v = checkJwt(h.authorization);
    if (typeof v === 'string') return fail(403, v);
    if (st.kid && st.kid !== v.kid) return fail(403, 'UnrelatedKeyIdInToken');
    st.kid = v.kid;
    kid = v.kid;
    if (!st.raised) {
      // APNs raises the stream limit once a valid token was seen
      st.raised = true;
      st.limit = opt.maxStreams;
      session.settings({ maxConcurrentStreams: opt.maxStreams });
    }
  }

  const topic = h['apns-topic'];
  if (topic === undefined && !certAuth) return fail(400, 'MissingTopic');
  if (topic !== undefined && opt.topic.length && !opt.topic.includes(topic))
    return fail(400, 'BadTopic');
  const type = h['apns-push-type'];
  if (type !== undefined && !PUSH_TYPES.has(type)) return fail(400, 'InvalidPushType');
  const prio = h['apns-priority'];
  if (prio !== undefined && !['1', '5', '10'].includes(prio)) return fail(400, 'BadPriority');
  if (type === 'background' && prio === '10') return fail(400, 'BadPriority');
  const exp = h['apns-expiration'];
  if (exp !== undefined && !/^\d+$/.test(exp)) return fail(400, 'BadExpirationDate');
  const coll = h['apns-collapse-id'];
  if (coll !== undefined && Buffer.byteLength(coll) > 64) return fail(400, 'BadCollapseId');
  if (size === 0) return fail(400, 'PayloadEmpty');
  if (size > (type === 'voip' ? 5120 : 4096)) return fail(413, 'PayloadTooLarge');
  let payload;
  try { payload = JSON.parse(body.toString('utf8')); } catch (e) { payload = null; }
  if (!payload || typeof payload !== 'object' || Array.isArray(payload))
    return fail(400, 'BadPayload'); // not a documented reason: herald never sends it
  if (type === 'background' && (!payload.aps || payload.aps['content-available'] !== 1))
    return fail(400, 'InvalidPushType');

  // scripted behaviours
  const n = (attempts.get(token) || 0) + 1;
  attempts.set(token, n);
  const p4 = token.slice(0, 4).toLowerCase();
  if (p4 === '0410') return fail(410, 'Unregistered');
  if (p4 === '0400') return fail(400, 'BadDeviceToken');
  if (p4 === '0401') return fail(400, 'DeviceTokenNotForTopic');
  if (p4 === '0413') return fail(413, 'PayloadTooLarge');
  if (n === 1) {
    if (p4 === '0429') return fail(429, 'TooManyRequests', { 'retry-after': '1' });
    if (p4 === '0500') return fail(500, 'InternalServerError');
    if (p4 === '0503') return fail(503, 'ServiceUnavailable', { 'retry-after': '1' });
    if (p4 === '0403') return fail(403, 'ExpiredProviderToken');
    if (p4 === '0ef0') return stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
  }
  if (p4 === '0ff0') return; // never answered

  const hdrs = {};
  for (const k of Object.keys(h)) if (k.startsWith('apns-')) hdrs[k] = h[k];
  hdrs['authorization-kind'] = certAuth ? 'certificate' : 'token';
  record({ conn: st.id, stream: stream.id, token, kid, attempt: n, headers: hdrs,
    payload, concurrent: st.active, limit: st.limit, at: Date.now() });
  st.served++;
  const done = () => {
    reply(stream, 200, null, id);
    if (opt.goawayAfter && st.served === opt.goawayAfter && !st.goawayId) {
      st.goawayId = stream.id;
      record({ event: 'goaway', conn: st.id, last: stream.id, at: Date.now() });
      session.goaway(http2.constants.NGHTTP2_NO_ERROR, stream.id);
      setTimeout(() => { if (!session.destroyed) session.destroy(); }, 200);
    }
    if (opt.dropAfter && st.served === opt.dropAfter) {
      record({ event: 'drop', conn: st.id, at: Date.now() });
      setImmediate(() => session.destroy());
    }
  };
  if (opt.latencyMs) setTimeout(done, opt.latencyMs); else done();
}

server.listen(opt.port, '127.0.0.1', () => {
  const port = server.address().port;
  if (opt.portFile) fs.writeFileSync(opt.portFile + '.tmp', String(port));
  if (opt.portFile) fs.renameSync(opt.portFile + '.tmp', opt.portFile);
  process.stdout.write('port=' + port + '\n');
});

let quitting = false;
function quit() {
  quitting = true;
  if (out) out.end(() => process.exit(0)); else process.exit(0);
}
process.on('SIGTERM', quit);
process.on('SIGINT', quit);
