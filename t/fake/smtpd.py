#!/usr/bin/python3
"""t/fake/smtpd.py: a real SMTP server for herald's email tests, built on
aiosmtpd (Debian's python3-aiosmtpd): ESMTP with STARTTLS (a test
certificate), AUTH PLAIN and LOGIN (only after STARTTLS), SIZE, and
PIPELINING advertised (aiosmtpd reads pipelined commands in order).

  /usr/bin/python3 t/fake/smtpd.py --log F --port-file F \\
      [--cert F --key F] [--auth user:pass] [--auth-mechs PLAIN,LOGIN] \\
      [--size N] [--no-pipelining]

Without --cert there is no STARTTLS (a plain server, which herald must
refuse with "starttls on"). Each accepted message is one JSON line in
--log: {"mail_from", "rcpt_tos", "mail_options", "rcpt_options", "data"
(the message as received, after un-stuffing), "tls", "auth", "conn"};
other lines have "event" (connect, rcpt_refused, ...).

Scripted by the recipient's local part:
  tempfail*  451 4.3.0 on RCPT          bounce*  550 5.1.1 on RCPT
  datafail*  554 5.6.0 after DATA       grey*    450 on RCPT once
"""
import argparse
import asyncio
import json
import os
import signal
import ssl
import sys
import time

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

ap = argparse.ArgumentParser()
ap.add_argument('--log')
ap.add_argument('--port-file')
ap.add_argument('--port', type=int, default=0)
ap.add_argument('--cert')
ap.add_argument('--key')
ap.add_argument('--auth')
ap.add_argument('--auth-mechs', default='PLAIN,LOGIN')
ap.add_argument('--size', type=int, default=33554432)
ap.add_argument('--no-pipelining', action='store_true')
opt = ap.parse_args()

nconn = 0
grey_seen = set()


def record(obj):
    if opt.log:
        with open(opt.log, 'a') as f:
            f.write(json.dumps(obj) + '\n')


def local(addr):
    return addr.split('@', 1)[0].lower()


class Handler:
    async def handle_EHLO(self, server, session, envelope, hostname,
                          responses):
        session.host_name = hostname
        if not opt.no_pipelining:
            responses.insert(1, '250-PIPELINING')
        return responses

    async def handle_RCPT(self, server, session, envelope, address,
                          rcpt_options):
        lp = local(address)
        if lp.startswith('tempfail'):
            record({'event': 'rcpt_refused', 'code': 451, 'rcpt': address})
            return '451 4.3.0 mailbox temporarily unavailable'
        if lp.startswith('bounce'):
            record({'event': 'rcpt_refused', 'code': 550, 'rcpt': address})
            return '550 5.1.1 <%s>: user unknown' % address
        if lp.startswith('grey') and address not in grey_seen:
            grey_seen.add(address)
            record({'event': 'rcpt_refused', 'code': 450, 'rcpt': address})
            return '450 4.2.0 greylisted, try again'
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return '250 2.1.5 OK'

    async def handle_DATA(self, server, session, envelope):
        data = envelope.original_content or envelope.content
        rec = {
            'at': int(time.time() * 1000),
            'conn': getattr(server, 'fake_id', 0),
            'mail_from': envelope.mail_from,
            'mail_options': envelope.mail_options,
            'rcpt_tos': envelope.rcpt_tos,
            'rcpt_options': envelope.rcpt_options,
            'data': data.decode('latin-1'),
            'tls': session.ssl is not None,
            'auth': (session.auth_data.decode()
                     if isinstance(session.auth_data, bytes)
                     else None),
            'helo': session.host_name,
        }
        if any(local(r).startswith('datafail') for r in envelope.rcpt_tos):
            rec['refused'] = 554
            record(rec)
            return '554 5.6.0 message content rejected'
        record(rec)
        return '250 2.0.0 OK queued as fake%d' % int(time.time() * 1e6)


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = False
    if opt.auth and isinstance(auth_data, LoginPassword):
        user, _, pw = opt.auth.partition(':')
        ok = (auth_data.login.decode() == user
              and auth_data.password.decode() == pw)
    record({'event': 'auth', 'mechanism': mechanism, 'ok': ok,
            'tls': session.ssl is not None})
    return AuthResult(success=ok, auth_data=auth_data.login if ok else None)


def factory():
    global nconn
    nconn += 1
    ctx = None
    if opt.cert:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(opt.cert, opt.key)
    mechs = set(m.strip().upper() for m in opt.auth_mechs.split(','))
    exclude = [m for m in ('PLAIN', 'LOGIN') if m not in mechs]
    s = SMTP(Handler(), hostname='fake-smtp.test', tls_context=ctx,
             require_starttls=bool(ctx),
             authenticator=authenticator if opt.auth else None,
             auth_required=bool(opt.auth), auth_require_tls=True,
             auth_exclude_mechanism=exclude,
             data_size_limit=opt.size, enable_SMTPUTF8=False,
             decode_data=False)
    s.fake_id = nconn
    record({'event': 'connect', 'conn': nconn, 'at': int(time.time() * 1000)})
    return s


def main():
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    server = loop.run_until_complete(
        loop.create_server(factory, '127.0.0.1', opt.port))
    port = server.sockets[0].getsockname()[1]
    if opt.port_file:
        with open(opt.port_file + '.tmp', 'w') as f:
            f.write(str(port))
        os.rename(opt.port_file + '.tmp', opt.port_file)
    sys.stdout.write('port=%d\n' % port)
    sys.stdout.flush()
    loop.add_signal_handler(signal.SIGTERM, loop.stop)
    loop.add_signal_handler(signal.SIGINT, loop.stop)
    loop.run_forever()


main()
