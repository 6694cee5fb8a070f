#!/usr/bin/env node
// t/fake/fcm.js: a fake Firebase Cloud Messaging HTTP v1 service and its
// Google OAuth2 token endpoint, for herald's tests. TLS + ALPN h2 (node's
// built-in http2, no npm); the message rules, error bodies
// (google.rpc.Status with an FcmError detail) and the RS256 assertion
// check of protocols.md section 2 (checklist 2.7), with per-token faults.
//
//   node t/fake/fcm.js --cert server.pem --key server.key \
//       --account sa-pub.pem:client@example.iam.gserviceaccount.com \
//       --project test-project [--account ...] [--log received.jsonl] \
//       [--port-file F] [--port 0] [--token-path /token] [--expires-in 3599]
//
// --account PUB:EMAIL[:PROJECT] may be repeated (several service accounts);
// an access token is good for the project(s) of its account only (403
// PERMISSION_DENIED / SENDER_ID_MISMATCH otherwise). The assertion's aud
// must be https://<host>:<port><token-path> as the client was told in the
// service-account file (token_uri).
//
// Lines in --log: {"event":"token",...} per access token issued, and one
// {"project","token","message","bearer","conn","attempt","at"} per
// accepted message.
//
// Scripted registration tokens, by prefix:
//   dead-    404 NOT_FOUND + FcmError UNREGISTERED
//   bogus-   400 INVALID_ARGUMENT "The registration token is not a valid FCM
//            registration token"
//   flaky-   503 UNAVAILABLE, retry-after: 1, once
//   quota-   429 RESOURCE_EXHAUSTED + QUOTA_EXCEEDED, retry-after: 1, once
//   oops-    500 INTERNAL, once
//   expire-  revokes every access token issued so far, then 401
//            UNAUTHENTICATED, once (the client must fetch a new one)
//   hang-    never answered
'use strict';

const http2 = require('http2');
const crypto = require('crypto');
const fs = require('fs');

const opt = { account: [], port: 0, tokenPath: '/token', expiresIn: 3599 };
for (let i = 2; i < process.argv.length; i++) {
  const a = process.argv[i];
  const v = () => process.argv[++i];
  switch (a) {
    case '--cert': opt.cert = v(); break;
    case '--key': opt.key = v(); break;
    case '--account': opt.account.push(v()); break;
    case '--project': opt.project = v(); break;
    case '--log': opt.log = v(); break;
    case '--port-file': opt.portFile = v(); break;
    case '--port': opt.port = +v(); break;
    case '--token-path': opt.tokenPath = v(); break;
    case '--expires-in': opt.expiresIn = +v(); break;
    default: console.error('unknown option ' + a); process.exit(2);
  }
}

const accounts = new Map(); // email -> {key, project}
for (const spec of opt.account) {
  const [file, email, project] = spec.split(':');
  accounts.set(email, {
    key: crypto.createPublicKey(fs.readFileSync(file)),
    project: project || opt.project,
  });
}

let out = null;
if (opt.log) out = fs.createWriteStream(opt.log, { flags: 'a' });
function record(obj) { if (out) out.write(JSON.stringify(obj) + '\n'); }

const issued = new Map(); // access token -> {email, project, expires}
const attempts = new Map();
let ntokens = 0, nconn = 0, port = 0;

function status(stream, code, body, extra) {
  if (stream.destroyed || stream.closed) return;
  const h = Object.assign({ ':status': code, 'content-type': 'application/json; charset=UTF-8' },
    extra || {});
  stream.respond(h);
  stream.end(JSON.stringify(body));
}

function rpcError(stream, code, st, message, fcmCode, extra, details) {
  const d = details ? details.slice() : [];
  if (fcmCode)
    d.push({ '@type': 'type.googleapis.com/google.firebase.fcm.v1.FcmError', errorCode: fcmCode });
  const e = { code, message, status: st };
  if (d.length) e.details = d;
  status(stream, code, { error: e }, extra);
}

function tokenEndpoint(stream, h, body) {
  const bad = (desc) => status(stream, 400, { error: 'invalid_grant', error_description: desc });
  if (h[':method'] !== 'POST') return status(stream, 405, { error: 'invalid_request' });
  if (!/^application\/x-www-form-urlencoded/.test(h['content-type'] || ''))
    return status(stream, 400, { error: 'invalid_request', error_description: 'bad content-type' });
  const form = new URLSearchParams(body.toString('utf8'));
  if (form.get('grant_type') !== 'urn:ietf:params:oauth:grant-type:jwt-bearer')
    return status(stream, 400, { error: 'unsupported_grant_type' });
  const jwt = form.get('assertion') || '';
  const parts = jwt.split('.');
  if (parts.length !== 3) return bad('Invalid JWT: malformed');
  let hd, c;
  try {
    hd = JSON.parse(Buffer.from(parts[0], 'base64url'));
    c = JSON.parse(Buffer.from(parts[1], 'base64url'));
  } catch (e) { return bad('Invalid JWT: not JSON'); }
  if (hd.alg !== 'RS256') return bad('Invalid JWT: alg');
  const acct = accounts.get(c.iss);
  if (!acct) return bad('Invalid JWT: unknown iss');
  const ok = crypto.verify('sha256', Buffer.from(parts[0] + '.' + parts[1]), acct.key,
    Buffer.from(parts[2], 'base64url'));
  if (!ok) return bad('Invalid JWT Signature.');
  const aud = 'https://127.0.0.1:' + port + opt.tokenPath;
  const audHost = 'https://localhost:' + port + opt.tokenPath;
  if (c.aud !== aud && c.aud !== audHost) return bad('Invalid JWT: aud ' + c.aud);
  const scopes = String(c.scope || '').split(' ');
  if (!scopes.includes('https://www.googleapis.com/auth/firebase.messaging'))
    return bad('Invalid JWT: scope');
  const now = Math.floor(Date.now() / 1000);
  if (!Number.isInteger(c.iat) || !Number.isInteger(c.exp) || c.exp - c.iat > 3600
      || c.iat > now + 300 || c.exp < now)
    return bad('Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe.');
  const tok = 'ya29.fake-' + (++ntokens) + '-' + crypto.randomBytes(8).toString('hex');
  issued.set(tok, { email: c.iss, project: acct.project, expires: Date.now() + opt.expiresIn * 1000 });
  record({ event: 'token', n: ntokens, email: c.iss, kid: hd.kid || null, at: Date.now() });
  status(stream, 200, { access_token: tok, expires_in: opt.expiresIn, token_type: 'Bearer' });
}

function sendEndpoint(stream, h, body, project, conn) {
  const m = /^Bearer (.+)$/.exec(h.authorization || '');
  const grant = m && issued.get(m[1]);
  if (!grant || grant.expires < Date.now())
    return rpcError(stream, 401, 'UNAUTHENTICATED',
      'Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.');
  if (grant.project !== project)
    return rpcError(stream, 403, 'PERMISSION_DENIED',
      'Permission \'cloudmessaging.messages.create\' denied on resource \'//cloudresourcemanager.googleapis.com/projects/' + project + '\'');
  let req;
  try { req = JSON.parse(body.toString('utf8')); } catch (e) { req = null; }
  const msg = req && req.message;
  if (!msg || typeof msg !== 'object')
    return rpcError(stream, 400, 'INVALID_ARGUMENT', 'Invalid JSON payload received.', 'INVALID_ARGUMENT');
  const targets = ['token', 'topic', 'condition'].filter((k) => msg[k] !== undefined);
  if (targets.length !== 1)
    return rpcError(stream, 400, 'INVALID_ARGUMENT', 'Exactly one of token, topic or condition must be specified.', 'INVALID_ARGUMENT');
  const viol = [];
  for (const [where, data] of [['message.data', msg.data], ['message.android.data', msg.android && msg.android.data]]) {
    if (data === undefined) continue;
    Object.keys(data).forEach((k, i) => {
      if (typeof data[k] !== 'string')
        viol.push({ field: where + '[' + i + '].value', description: 'Invalid value at \'' + where + '[' + i + '].value\' (TYPE_STRING)' });
      if (k === 'from' || k === 'gcm' || /^google/.test(k))
        viol.push({ field: where, description: 'Invalid data key: ' + k });
    });
  }
  const a = msg.android;
  if (a) {
    if (a.priority !== undefined && !['normal', 'high', 'NORMAL', 'HIGH'].includes(a.priority))
      viol.push({ field: 'message.android.priority', description: 'Invalid value' });
    if (a.ttl !== undefined && !/^\d+(\.\d{1,9})?s$/.test(a.ttl))
      viol.push({ field: 'message.android.ttl', description: 'Invalid duration' });
    else if (a.ttl !== undefined && parseFloat(a.ttl) > 2419200)
      viol.push({ field: 'message.android.ttl', description: 'TTL too long' });
  }
  if (msg.notification && typeof msg.notification !== 'object')
    viol.push({ field: 'message.notification', description: 'Invalid value' });
  if (Buffer.byteLength(JSON.stringify(msg.data || {})) > 4096)
    return rpcError(stream, 400, 'INVALID_ARGUMENT', 'Message is too big', 'INVALID_ARGUMENT');
  if (viol.length)
    return rpcError(stream, 400, 'INVALID_ARGUMENT', viol[0].description, 'INVALID_ARGUMENT',
      null, [{ '@type': 'type.googleapis.com/google.rpc.BadRequest', fieldViolations: viol }]);

  const token = msg.token;
  if (token !== undefined) {
    const n = (attempts.get(token) || 0) + 1;
    attempts.set(token, n);
    if (/^dead-/.test(token))
      return rpcError(stream, 404, 'NOT_FOUND', 'Requested entity was not found.', 'UNREGISTERED');
    if (/^bogus-/.test(token))
      return rpcError(stream, 400, 'INVALID_ARGUMENT', 'The registration token is not a valid FCM registration token', 'INVALID_ARGUMENT');
    if (/^hang-/.test(token)) return;
    if (n === 1) {
      if (/^flaky-/.test(token))
        return rpcError(stream, 503, 'UNAVAILABLE', 'The service is currently unavailable.', 'UNAVAILABLE', { 'retry-after': '1' });
      if (/^quota-/.test(token))
        return rpcError(stream, 429, 'RESOURCE_EXHAUSTED', 'Quota exceeded for quota metric \'Send requests\'', 'QUOTA_EXCEEDED', { 'retry-after': '1' });
      if (/^oops-/.test(token))
        return rpcError(stream, 500, 'INTERNAL', 'Internal error encountered.', 'INTERNAL');
      if (/^expire-/.test(token)) {
        issued.clear();
        return rpcError(stream, 401, 'UNAUTHENTICATED', 'Request had invalid authentication credentials.');
      }
    }
    record({ project, token, message: msg, bearer: m[1], email: grant.email, conn, attempt: n, at: Date.now() });
  } else {
    record({ project, message: msg, bearer: m[1], conn, at: Date.now() });
  }
  const id = crypto.randomBytes(8).readBigUInt64BE().toString();
  status(stream, 200, { name: 'projects/' + project + '/messages/0:' + id });
}

const server = http2.createSecureServer({
  cert: fs.readFileSync(opt.cert),
  key: fs.readFileSync(opt.key),
  ALPNProtocols: ['h2'],
  minVersion: 'TLSv1.2',
  settings: { maxConcurrentStreams: 100 },
});

server.on('session', (session) => {
  session.fcmConn = ++nconn;
  session.on('error', () => {});
});

server.on('stream', (stream, h) => {
  stream.on('error', () => {});
  const chunks = [];
  stream.on('data', (d) => chunks.push(d));
  stream.on('end', () => {
    const body = Buffer.concat(chunks);
    const path = h[':path'] || '';
    if (path === opt.tokenPath) return tokenEndpoint(stream, h, body);
    const m = /^\/v1\/projects\/([^/]+)\/messages:send$/.exec(path);
    if (!m) return rpcError(stream, 404, 'NOT_FOUND', 'Not found: ' + path);
    if (h[':method'] !== 'POST') return rpcError(stream, 405, 'INVALID_ARGUMENT', 'Method not allowed');
    sendEndpoint(stream, h, body, m[1], stream.session.fcmConn);
  });
});

server.listen(opt.port, '127.0.0.1', () => {
  port = server.address().port;
  if (opt.portFile) {
    fs.writeFileSync(opt.portFile + '.tmp', String(port));
    fs.renameSync(opt.portFile + '.tmp', opt.portFile);
  }
  process.stdout.write('port=' + port + '\n');
});

function quit() { if (out) out.end(() => process.exit(0)); else process.exit(0); }
process.on('SIGTERM', quit);
process.on('SIGINT', quit);
