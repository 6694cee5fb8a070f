#!/usr/bin/env node
// t/fake/webpush.js: a fake Web Push service (RFC 8030) for herald's tests,
// checking what a push service checks (protocols.md 3.2-3.6) and reading
// the message as the browser would: it holds each subscription's private
// key and auth secret, verifies the VAPID token (RFC 8292: ES256 with
// k, aud = this origin, exp in the future and <= 24 h ahead, sub a
// mailto: or https: URI, k the subscription's applicationServerKey) and
// DECRYPTS the aes128gcm body (RFC 8188/8291). Node built-ins only.
//
//   node t/fake/webpush.js --cert F --key F [--log F] [--port-file F]
//
// POST /subscribe {"applicationServerKey": K, "script": [STATUS...]}
//   -> {endpoint, keys: {p256dh, auth}, id}. The scripted statuses answer
//   the subscription's next pushes, one each, before any check (429 and
//   503 carry Retry-After: 1; 404 and 410 mark it gone for good).
// POST /push/ID: the push. 201 + Location when every check passes, and a
//   log line {id, headers, ttl, urgency, topic, claims, payload, status};
//   400 (TTL, Urgency, Topic, Content-Encoding, crypto), 401/403 (VAPID),
//   404 (unknown), 410 (gone), 413 (> 4096 bytes) with {"error": why}.
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const https = require('https');
const { parseArgs } = require('./rest.js');

const opt = parseArgs({ options: {}, defaults: {} });
const subs = new Map();
let origin = '';
let nmsg = 0;

const record = (obj) => {
  if (opt.log) fs.appendFileSync(opt.log, JSON.stringify(obj) + '\n');
};
const b64u = (b) => Buffer.from(b).toString('base64url');
const unb64u = (s) => Buffer.from(String(s), 'base64url');

// ==== VAPID ====

function verifyVapid(auth, sub) {
  const m = /^vapid t=([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+), ?k=([A-Za-z0-9_-]+)$/
    .exec(auth || '');
  if (!m) return [401, 'missing or malformed vapid Authorization'];
  const [, t, k] = m;
  const kb = unb64u(k);
  if (kb.length !== 65 || kb[0] !== 4) return [401, 'k is not a P-256 point'];
  if (sub.asKey && !kb.equals(unb64u(sub.asKey)))
    return [403, 'k is not the applicationServerKey of the subscription'];
  const [h, c, s] = t.split('.');
  let header, claims;
  try {
    header = JSON.parse(unb64u(h).toString());
    claims = JSON.parse(unb64u(c).toString());
  } catch (e) { return [401, 'JWT parts are not JSON']; }
  if (header.alg !== 'ES256' || header.typ !== 'JWT')
    return [401, 'JWT header must be {typ: JWT, alg: ES256}'];
  const key = crypto.createPublicKey({ format: 'jwk', key: {
    kty: 'EC', crv: 'P-256', x: b64u(kb.subarray(1, 33)),
    y: b64u(kb.subarray(33, 65)) } });
  const sig = unb64u(s);
  if (sig.length !== 64 ||
      !crypto.verify('sha256', Buffer.from(h + '.' + c), {
        key, dsaEncoding: 'ieee-p1363' }, sig))
    return [401, 'JWT signature does not verify with k'];
  const now = Math.floor(Date.now() / 1000);
  if (claims.aud !== origin) return [403, `aud ${claims.aud} is not ${origin}`];
  if (!Number.isInteger(claims.exp) || claims.exp <= now)
    return [403, 'JWT expired'];
  if (claims.exp > now + 86400) return [403, 'exp more than 24 h ahead'];
  if (!/^(mailto:|https:\/\/)/.test(claims.sub || ''))
    return [403, 'sub must be a mailto: or https: URI'];
  return [0, claims];
}

// ==== aes128gcm (RFC 8188) with the Web Push key (RFC 8291) ====

const hmac = (key, ...data) => {
  const h = crypto.createHmac('sha256', key);
  for (const d of data) h.update(d);
  return h.digest();
};

function decrypt(sub, body) {
  if (body.length < 21) throw new Error('body shorter than its header');
  const salt = body.subarray(0, 16);
  const rs = body.readUInt32BE(16);
  const idlen = body[20];
  if (idlen !== 65) throw new Error('keyid must be the 65-byte sender key');
  const asPublic = body.subarray(21, 86);
  const data = body.subarray(86);
  if (rs < 18 || data.length > rs || data.length < 17)
    throw new Error('one record of at most rs bytes expected');
  const secret = sub.ecdh.computeSecret(asPublic);
  const uaPublic = sub.ecdh.getPublicKey();
  const prkKey = hmac(sub.auth, secret);
  const ikm = hmac(prkKey, Buffer.from('WebPush: info\0'), uaPublic, asPublic,
                   Buffer.from([1]));
  const prk = hmac(salt, ikm);
  const cek = hmac(prk, Buffer.from('Content-Encoding: aes128gcm\0\x01'))
    .subarray(0, 16);
  const nonce = hmac(prk, Buffer.from('Content-Encoding: nonce\0\x01'))
    .subarray(0, 12);
  const d = crypto.createDecipheriv('aes-128-gcm', cek, nonce);
  d.setAuthTag(data.subarray(data.length - 16));
  const plain = Buffer.concat([d.update(data.subarray(0, data.length - 16)),
                               d.final()]);
  let end = plain.length;
  while (end > 0 && plain[end - 1] === 0) end--;
  if (end === 0 || plain[end - 1] !== 2)
    throw new Error('the last record must end with delimiter 0x02');
  return { plain: plain.subarray(0, end - 1), padding: plain.length - end };
}

// ==== the service ====

function onPush(req, res, id, body, reply) {
  const rec = { at: Date.now(), id, method: req.method, path: req.url,
                headers: req.headers, length: body.length };
  const answer = (status, extra, out) => {
    rec.status = status;
    if (out && out.error) rec.error = out.error;
    record(rec);
    reply(status, extra, out);
  };
  const sub = subs.get(id);
  if (!sub) return answer(404, {}, { error: 'no such subscription' });
  if (sub.gone) return answer(sub.gone, {}, { error: 'subscription gone' });
  if (sub.script.length) {
    const st = sub.script.shift();
    if (st === 404 || st === 410) sub.gone = st;
    return answer(st, st === 429 || st >= 500 ? { 'Retry-After': '1' } : {},
                  { error: 'scripted ' + st });
  }
  const h = req.headers;
  if (!/^\d+$/.test(h.ttl || '')) return answer(400, {}, { error: 'TTL' });
  rec.ttl = +h.ttl;
  if (h.urgency !== undefined) {
    if (!['very-low', 'low', 'normal', 'high'].includes(h.urgency))
      return answer(400, {}, { error: 'Urgency' });
    rec.urgency = h.urgency;
  }
  if (h.topic !== undefined) {
    if (!/^[A-Za-z0-9_-]{1,32}$/.test(h.topic))
      return answer(400, {}, { error: 'Topic' });
    rec.topic = h.topic;
  }
  if (h['content-encoding'] !== 'aes128gcm')
    return answer(400, {}, { error: 'Content-Encoding must be aes128gcm' });
  const [st, claims] = verifyVapid(h.authorization, sub);
  if (st) return answer(st, {}, { error: claims });
  rec.claims = claims;
  if (body.length > 4096) return answer(413, {}, { error: 'too large' });
  let out;
  try { out = decrypt(sub, body); } catch (e) {
    return answer(400, {}, { error: 'decryption failed: ' + e.message });
  }
  rec.padding = out.padding;
  rec.text = out.plain.toString('utf8');
  try { rec.payload = JSON.parse(rec.text); } catch (e) { /* as text */ }
  const loc = `${origin}/message/${++nmsg}`;
  answer(201, { Location: loc, TTL: String(rec.ttl) }, null);
}

const server = https.createServer({ cert: fs.readFileSync(opt.cert),
                                    key: fs.readFileSync(opt.key) },
                                  (req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const body = Buffer.concat(chunks);
    const reply = (status, headers, out) => {
      const data = out ? JSON.stringify(out) : '';
      res.writeHead(status, { 'Content-Type': 'application/json',
                              'Content-Length': Buffer.byteLength(data),
                              ...headers });
      res.end(data);
    };
    let m;
    if (req.method === 'POST' && req.url === '/subscribe') {
      let o = {};
      try { o = JSON.parse(body.toString() || '{}'); } catch (e) { /* {} */ }
      const ecdh = crypto.createECDH('prime256v1');
      ecdh.generateKeys();
      const id = crypto.randomBytes(12).toString('hex');
      const sub = { ecdh, auth: crypto.randomBytes(16),
                    asKey: o.applicationServerKey, script: o.script || [] };
      subs.set(id, sub);
      reply(200, {}, { id, endpoint: `${origin}/push/${id}`,
                       keys: { p256dh: b64u(ecdh.getPublicKey()),
                               auth: b64u(sub.auth) } });
    } else if (req.method === 'POST' && (m = /^\/push\/(\w+)$/.exec(req.url))) {
      onPush(req, res, m[1], body, reply);
    } else {
      reply(404, {}, { error: 'not found' });
    }
  });
});
server.keepAliveTimeout = 60000;
server.listen(opt.port || 0, '127.0.0.1', () => {
  const port = server.address().port;
  origin = `https://127.0.0.1:${port}`;
  if (opt.portFile) {
    fs.writeFileSync(opt.portFile + '.tmp', String(port));
    fs.renameSync(opt.portFile + '.tmp', opt.portFile);
  }
  process.stdout.write('port=' + port + '\n');
});
const quit = () => process.exit(0);
process.on('SIGTERM', quit);
process.on('SIGINT', quit);
