#!/usr/bin/env node
// bench/sms-node.js: the reference for bench/sms: N Twilio Messages API
// requests (form-encoded To/From/Body/StatusCallback, basic auth) POSTed by
// node's https client with a keep-alive agent of CONNS sockets to the same
// fake (t/fake/twilio.js), CA-verified. Prints one JSON line: sent (201s),
// failed, secs (first request to last answer), rate, cpu_us,
// cpu_us_per_msg.
//
//   node bench/sms-node.js PORT CA ACCOUNT TOKEN N CONNS
'use strict';

const fs = require('fs');
const https = require('https');

const [port, ca, account, token, nStr, connsStr] = process.argv.slice(2);
const N = +nStr, conns = +connsStr;
const agent = new https.Agent({ keepAlive: true, maxSockets: conns, ca: fs.readFileSync(ca) });
const auth = 'Basic ' + Buffer.from(`${account}:${token}`).toString('base64');
const path = `/2010-04-01/Accounts/${account}/Messages.json`;

const cpu0 = process.cpuUsage();
const t0 = process.hrtime.bigint();
let done = 0, ok = 0, firstErr = null;
// keep CONNS x 4 requests queued in the agent at a time (no giant queue)
let next = 1;
function finish() {
  if (++done < N) { if (next <= N) send(next++); return; }
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const c = process.cpuUsage(cpu0);
  const cpu = c.user + c.system;
  console.log(JSON.stringify({ sent: ok, failed: N - ok, firstErr, secs,
    rate: ok / secs, cpu_us: cpu, cpu_us_per_msg: cpu / N }));
  agent.destroy();
  setTimeout(() => process.exit(0), 100);
}
function send(i) {
  const body = new URLSearchParams({
    To: '+1555' + String(i).padStart(6, '0') + '8', From: '+15550001111',
    Body: `Your code is ${100000 + i}. It expires in 10 minutes.`,
    StatusCallback: `https://herald.example.com/v1/callbacks/twilio?delivery=bench${i}`,
  }).toString();
  const req = https.request({ host: '127.0.0.1', port: +port, path, method: 'POST', agent,
    servername: 'localhost',
    headers: { authorization: auth, 'content-type': 'application/x-www-form-urlencoded',
      'content-length': Buffer.byteLength(body) } }, (res) => {
    res.resume();
    res.on('end', () => {
      if (res.statusCode === 201) ok++;
      else if (!firstErr) firstErr = 'status ' + res.statusCode;
      finish();
    });
  });
  req.on('error', (e) => { if (!firstErr) firstErr = String(e); finish(); });
  req.end(body);
}
for (let k = 0; k < conns * 4 && next <= N; k++) send(next++);
