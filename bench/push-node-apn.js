#!/usr/bin/env node
// bench/push-node-apn.js: the reference client of bench/push, as the issue
// names it: @parse/node-apn (the APNs client Parse Server uses, npm,
// installed into bench/out/npm by bench/push) sending N alerts to the fake
// APNs with token auth, CHUNK notifications handed to it at a time (its
// own HTTP/2 session multiplexes them), the way limits.md measured it.
//   NODE_PATH=bench/out/npm/node_modules \
//   node bench/push-node-apn.js PORT CA KEY.p8 KID TEAM N [CHUNK]
// Prints one JSON line: {"n","failed","seconds","rate","cpu_us_per_push"}.
'use strict';
const fs = require('fs');
const crypto = require('crypto');
const apn = require('@parse/node-apn');

const [port, ca, keyFile, kid, team, nArg, chunkArg] = process.argv.slice(2);
const N = +nArg, CHUNK = +(chunkArg || 1000);

const provider = new apn.Provider({
  token: { key: fs.readFileSync(keyFile), keyId: kid, teamId: team },
  address: '127.0.0.1',
  port: +port,
  ca: fs.readFileSync(ca),
  production: true,
  requestTimeout: 30000,
});

function note(i) {
  const n = new apn.Notification();
  n.topic = 'com.example.bench';
  n.pushType = 'alert';
  n.priority = 10;
  n.alert = { title: 'Bench', body: 'Notification ' + i };
  n.payload = { n: String(i) };
  n.id = crypto.randomUUID();
  return n;
}

// never a scripted prefix of the fake (they start with 0)
const token = (i) =>
  'a' + crypto.createHash('sha256').update('node-apn-' + i).digest('hex').slice(1);

async function main() {
  // one notification first: the fake, like APNs, raises the stream
  // limit after the first valid token
  await provider.send(note(-1), token(-1));
  const t0 = process.hrtime.bigint(), c0 = process.cpuUsage();
  let failed = 0;
  for (let i = 0; i < N; i += CHUNK) {
    const m = Math.min(CHUNK, N - i);
    const sends = [];
    for (let k = 0; k < m; k++) sends.push(provider.send(note(i + k), token(i + k)));
    for (const r of await Promise.all(sends)) failed += r.failed.length;
  }
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage(c0);
  console.log(JSON.stringify({ n: N, failed, seconds: secs, rate: N / secs,
    cpu_us_per_push: (cpu.user + cpu.system) / N }));
  provider.shutdown();
}
main().catch((e) => { console.error(e); process.exit(1); });
