#!/usr/bin/env node
// bench/push-node.js: the reference client for bench/push: node's built-in
// http2 client sending N APNs requests (same headers, payload and JWT
// shape as herald) to the fake APNs, WINDOW in flight, over CONNS sessions.
//   node bench/push-node.js PORT CA KEY.p8 KID TEAM N [WINDOW] [CONNS]
// Prints one JSON line: {"n","seconds","rate","cpu_us_per_push"}.
'use strict';
const http2 = require('http2');
const crypto = require('crypto');
const fs = require('fs');

const [port, ca, keyFile, kid, team, nArg, winArg, connArg] = process.argv.slice(2);
const N = +nArg, WINDOW = +(winArg || 1000), CONNS = +(connArg || 1);
const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
const input = b64({ alg: 'ES256', kid }) + '.' + b64({ iss: team, iat: Math.floor(Date.now() / 1000) });
const sig = crypto.sign('sha256', Buffer.from(input),
  { key: fs.readFileSync(keyFile), dsaEncoding: 'ieee-p1363' });
const bearer = 'bearer ' + input + '.' + sig.toString('base64url');

const sessions = [];
for (let i = 0; i < CONNS; i++)
  sessions.push(http2.connect('https://127.0.0.1:' + port, { ca: fs.readFileSync(ca) }));

let sent = 0, done = 0, failed = 0;
let opened;
const t0 = process.hrtime.bigint(), c0 = process.cpuUsage();
function one() {
  if (sent >= N) return;
  const i = sent++;
  // never a scripted prefix of the fake (they start with 0)
  const token = 'a' + crypto.createHash('sha256').update('node-' + i).digest('hex').slice(1);
  const s = sessions[i % CONNS];
  const req = s.request({
    ':method': 'POST', ':path': '/3/device/' + token, authorization: bearer,
    'apns-topic': 'com.example.bench', 'apns-push-type': 'alert',
    'apns-priority': '10', 'apns-id': crypto.randomUUID(),
  });
  req.on('response', (h) => { if (h[':status'] !== 200) failed++; });
  req.on('error', () => { failed++; });
  req.on('close', () => {
    if (++done === N) return finish();
    if (!opened) {
      opened = true; // the limit is raised after the first valid token
      for (let k = 1; k < WINDOW; k++) one();
    } else {
      one();
    }
  });
  req.end(JSON.stringify({ aps: { alert: { title: 'Bench', body: 'Notification ' + i } }, n: String(i) }));
}
function finish() {
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage(c0);
  console.log(JSON.stringify({ n: N, failed, seconds: secs, rate: N / secs,
    cpu_us_per_push: (cpu.user + cpu.system) / N }));
  sessions.forEach((s) => s.close());
}
// APNs starts at one stream: send one, then open the window
opened = false;
one();
