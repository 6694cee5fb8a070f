#!/usr/bin/env node
// bench/smtp-sink.js: a small, fast SMTP sink for bench/email (node
// built-ins only). Real SMTP (RFC 5321) on 127.0.0.1: 220 greeting, EHLO
// (PIPELINING, SIZE, 8BITMIME, STARTTLS before TLS, AUTH PLAIN LOGIN after
// it), STARTTLS (RFC 3207) upgrading the same socket with the given
// certificate, AUTH PLAIN (with or without an initial response) and AUTH
// LOGIN checked against --auth user:pass, MAIL/RCPT/DATA (dot-terminated,
// un-stuffed), RSET, NOOP, QUIT. MAIL before STARTTLS and AUTH is refused
// (530), as a submission server does. Pipelined commands are answered in
// order.
//
//   node bench/smtp-sink.js --cert F --key F --auth user:pass \
//       --port-file F --log F [--sample F]
//
// --log gets one line per accepted message: "ms conn bytes rcpt\n"
// (buffered). --sample gets the first message as received (for a check).
// SIGTERM/SIGINT flush and exit; "stats" in the last log line on exit:
// {"event":"exit","messages":N,"cpu_us":U}.
'use strict';

const fs = require('fs');
const net = require('net');
const tls = require('tls');

const opt = { port: 0, size: 33554432 };
for (let i = 2; i < process.argv.length; i++) {
  const a = process.argv[i], v = () => process.argv[++i];
  if (a === '--cert') opt.cert = v();
  else if (a === '--key') opt.key = v();
  else if (a === '--auth') opt.auth = v();
  else if (a === '--port-file') opt.portFile = v();
  else if (a === '--port') opt.port = +v();
  else if (a === '--log') opt.log = v();
  else if (a === '--sample') opt.sample = v();
  else { console.error('unknown option ' + a); process.exit(2); }
}
const ctx = tls.createSecureContext({
  cert: fs.readFileSync(opt.cert), key: fs.readFileSync(opt.key) });
const [authUser, authPass] = (opt.auth || 'user:pass').split(/:(.*)/s);
const logOut = opt.log ? fs.createWriteStream(opt.log, { flags: 'a' }) : null;
let messages = 0, nconn = 0, sampled = false;

function session(raw) {
  const id = ++nconn;
  let sock = raw, secure = false, authed = false, buf = '', inData = false;
  let data = [], dataLen = 0, from = null, rcpt = [], pending = null;
  const send = (s) => { try { sock.write(s + '\r\n'); } catch (e) { /* gone */ } };
  const reset = () => { from = null; rcpt = []; data = []; dataLen = 0; };
  const onData = (chunk) => {
    buf += chunk.toString('latin1');
    let out = '';
    for (;;) {
      if (inData) {
        const end = buf.indexOf('\r\n.\r\n');
        // a message that is only the terminator line
        if (end < 0 && buf.startsWith('.\r\n') && dataLen === 0) {
          buf = buf.slice(3);
        } else if (end < 0) {
          // keep the tail that may start the terminator
          const keep = Math.min(buf.length, 4);
          if (buf.length > keep) { data.push(buf.slice(0, buf.length - keep)); dataLen += buf.length - keep; buf = buf.slice(buf.length - keep); }
          break;
        } else {
          data.push(buf.slice(0, end + 2));
          dataLen += end + 2;
          buf = buf.slice(end + 5);
        }
        inData = false;
        const msg = data.join('').replace(/^\.\./gm, '.');
        messages++;
        if (logOut) logOut.write(`${Date.now()} ${id} ${msg.length} ${rcpt.join(',')}\n`);
        if (opt.sample && !sampled) { sampled = true; fs.writeFileSync(opt.sample, msg, 'latin1'); }
        out += `250 2.0.0 OK queued as sink${messages}\r\n`;
        reset();
        continue;
      }
      const nl = buf.indexOf('\r\n');
      if (nl < 0) break;
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 2);
      if (pending) { out += pending(line); continue; }
      const verb = line.slice(0, 4).toUpperCase();
      const arg = line.slice(5);
      if (verb === 'EHLO' || verb === 'HELO') {
        reset();
        out += '250-sink.bench\r\n250-PIPELINING\r\n250-SIZE ' + opt.size + '\r\n250-8BITMIME\r\n'
          + (secure ? '250 AUTH PLAIN LOGIN\r\n' : '250 STARTTLS\r\n');
      } else if (verb === 'STAR' && line.toUpperCase() === 'STARTTLS' && !secure) {
        // answer, then upgrade the same socket (nothing may follow STARTTLS)
        sock.write(out + '220 2.0.0 ready to start TLS\r\n');
        out = '';
        buf = '';
        raw.removeListener('data', onData);
        const t = new tls.TLSSocket(raw, { isServer: true, secureContext: ctx });
        t.on('data', onData);
        t.on('error', () => raw.destroy());
        sock = t;
        secure = true;
        return;
      } else if (verb === 'AUTH' && secure && !authed) {
        const [mech, init] = arg.split(' ');
        const plain = (b64) => {
          const p = Buffer.from(b64, 'base64').toString().split('\0');
          if (p[1] === authUser && p[2] === authPass) { authed = true; return '235 2.7.0 OK\r\n'; }
          return '535 5.7.8 bad credentials\r\n';
        };
        if (/^PLAIN$/i.test(mech)) {
          if (init) out += plain(init);
          else { out += '334 \r\n'; pending = (l) => { pending = null; return plain(l); }; }
        } else if (/^LOGIN$/i.test(mech)) {
          let user = null;
          const askPass = (l) => {
            pending = null;
            const pw = Buffer.from(l, 'base64').toString();
            if (user === authUser && pw === authPass) { authed = true; return '235 2.7.0 OK\r\n'; }
            return '535 5.7.8 bad credentials\r\n';
          };
          const gotUser = (l) => { user = Buffer.from(l, 'base64').toString(); pending = askPass; return '334 UGFzc3dvcmQ6\r\n'; };
          if (init) { user = Buffer.from(init, 'base64').toString(); pending = askPass; out += '334 UGFzc3dvcmQ6\r\n'; }
          else { pending = gotUser; out += '334 VXNlcm5hbWU6\r\n'; }
        } else out += '504 5.5.4 mechanism not supported\r\n';
      } else if (verb === 'MAIL') {
        if (!secure) out += '530 5.7.0 must issue STARTTLS first\r\n';
        else if (!authed) out += '530 5.7.0 authentication required\r\n';
        else { reset(); from = arg; out += '250 2.1.0 OK\r\n'; }
      } else if (verb === 'RCPT') {
        if (!from) out += '503 5.5.1 need MAIL\r\n';
        else { const m = /<([^>]*)>/.exec(arg); rcpt.push(m ? m[1] : arg); out += '250 2.1.5 OK\r\n'; }
      } else if (verb === 'DATA') {
        if (!from || !rcpt.length) out += '503 5.5.1 need RCPT\r\n';
        else { out += '354 go ahead\r\n'; inData = true; }
      } else if (verb === 'RSET') { reset(); out += '250 2.0.0 OK\r\n'; }
      else if (verb === 'NOOP') out += '250 2.0.0 OK\r\n';
      else if (verb === 'QUIT') { sock.end(out + '221 2.0.0 bye\r\n'); return; }
      else out += '502 5.5.2 unknown command\r\n';
    }
    if (out) try { sock.write(out); } catch (e) { /* gone */ }
  };
  // replies go out at once (as asyncio's transports and most MTAs do):
  // with Nagle, a reply to a pipelined command that arrived in its own TLS
  // record waits for the client's delayed ACK (40 ms)
  raw.setNoDelay(true);
  raw.on('data', onData);
  raw.on('error', () => {});
  send('220 sink.bench ESMTP');
}

const server = net.createServer(session);
server.listen(opt.port, '127.0.0.1', () => {
  const port = server.address().port;
  if (opt.portFile) {
    fs.writeFileSync(opt.portFile + '.tmp', String(port));
    fs.renameSync(opt.portFile + '.tmp', opt.portFile);
  }
  process.stdout.write('port=' + port + '\n');
});
const quit = () => {
  const u = process.cpuUsage();
  const line = JSON.stringify({ event: 'exit', messages, conns: nconn, cpu_us: u.user + u.system }) + '\n';
  if (logOut) logOut.end(line, () => process.exit(0)); else process.exit(0);
};
process.on('SIGTERM', quit);
process.on('SIGINT', quit);
