#!/usr/bin/perl

# Email providers (issue 5, part 3): herald's SMTP client against a real
# SMTP server (aiosmtpd, Debian's python3-aiosmtpd, in t/fake/smtpd.py)
# with STARTTLS on a test CA and AUTH, and the SendGrid provider against
# t/fake/sendgrid.js.
#
# Covered: config checks; STARTTLS verified by name (c-ares "localhost"),
# AUTH PLAIN and AUTH LOGIN, EHLO name, MAIL FROM with SIZE=, PIPELINING
# on and off; the message as stored by the server: Date, From with an
# encoded display name, To, a UTF-8 Subject as RFC 2047 words, Message-ID
# from the delivery id, List-Unsubscribe + List-Unsubscribe-Post,
# multipart/alternative text then html in quoted-printable that decode to
# what was sent, a line starting with '.' (dot-stuffing), every line <=
# 998 (headers <= 78); connections reused; 550 -> dead address "550
# bouncing"; 451 retried to exhaustion; 450 greylisting retried and
# delivered; 554 after DATA failed; a message over the server's SIZE
# failed without being sent; a server without STARTTLS refused (nothing
# sent); SendGrid's JSON, bearer key, 202 + X-Message-Id, 429 retried
# after X-RateLimit-Reset, 400 failed; failover smtp -> sendgrid.

use strict;
use warnings;

use Test::More;
use Encode qw(decode);
use MIME::QuotedPrint qw(decode_qp);
use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep time);
use Herald::Test;
use Herald::Push;

binmode(Test::More->builder->$_, ':utf8')
    for qw(output failure_output todo_output);

my $why = Herald::Push::have_tools();
plan(skip_all => $why) if $why;
my $PY = '/usr/bin/python3';
plan(skip_all => 'python3-aiosmtpd is not installed (make deps)')
    if system("$PY -c 'import aiosmtpd' >/dev/null 2>&1") != 0;

my $t = Herald::Test->new;
my $dir = $t->dir;
my $pki = Herald::Push::make_pki($dir);
my @tls = ('--cert', $pki->{cert}, '--key', $pki->{key});

my $n_smtpd = 0;

# Starts t/fake/smtpd.py; returns an object with port, lines, events, stop
# (Herald::Push::Fake's).
sub start_smtpd
{
    my (@args) = @_;
    my $n = ++$n_smtpd;
    my $portfile = "$dir/smtpd-$n.port";
    my $log = "$dir/smtpd-$n.jsonl";
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open(STDIN, '<', '/dev/null');
        open(STDOUT, '>>', "$dir/smtpd-$n.out");
        open(STDERR, '>&', \*STDOUT);
        exec($PY, 't/fake/smtpd.py', '--log', $log, '--port-file',
            $portfile, @args) or POSIX::_exit(127);
    }
    my $deadline = time + 10;
    while (!-s $portfile) {
        if (waitpid($pid, WNOHANG) == $pid || time > $deadline) {
            kill 'KILL', $pid;
            die "smtpd did not start: "
                . (do { local (@ARGV, $/) = ("$dir/smtpd-$n.out"); <> } // '');
        }
        sleep 0.05;
    }
    my $port = do { local (@ARGV, $/) = ($portfile); <> };
    return bless { pid => $pid, port => $port + 0, log => $log, owner => $$ },
        'Herald::Push::Fake';
}

my $sA = start_smtpd(@tls, '--auth', 'mailer:pw-1');
my $sB = start_smtpd(@tls, '--auth', 'mailer:pw-1', '--auth-mechs', 'LOGIN',
    '--no-pipelining', '--size', 3000);
my $sC = start_smtpd();    # plain: no STARTTLS
my $sg = Herald::Push->start_fake('sendgrid', $dir, @tls,
    '--api-key', 'SG.key-1');

my %env = (SMTP_PASSWORD => 'pw-1', SENDGRID_KEY => 'SG.key-1');
my $UNSUB = 'https://herald.example.com/v1/unsubscribe';

sub smtp_block
{
    my ($name, %o) = @_;
    my $auth = $o{noauth} ? ''
        : "username mailer;\n    password \$SMTP_PASSWORD;";
    my $extra = $o{extra} // '';
    my $attempts = $o{attempts} // 3;
    return <<"EOF";
provider $name {
    type smtp;
    host $o{host};
    port $o{port};
    $auth
    from alerts\@example.org;
    from_name "Acme Alerts \x{e2}\x{9c}\x{93}";
    helo herald.test;
    unsubscribe_url $UNSUB;
    ca_file $pki->{ca};
    connections 2;
    timeout 3s;
    retry attempts $attempts base 100ms max 300ms;
    $extra
}
EOF
}

sub sendgrid_block
{
    my ($name) = @_;
    my $port = $sg->port;
    return <<"EOF";
provider $name {
    type sendgrid;
    url https://127.0.0.1:$port;
    api_key \$SENDGRID_KEY;
    from alerts\@example.org;
    from_name "Acme Alerts";
    unsubscribe_url $UNSUB;
    ca_file $pki->{ca};
    timeout 3s;
    retry attempts 3 base 100ms max 300ms;
}
EOF
}

sub conf_with
{
    my ($tt, $providers, $route) = @_;
    my $c = $tt->default_conf_text(workers => 2);
    $c =~ s/^channel email .*$/channel email { provider $route; }/m
        or die "no email channel in the default conf";
    $c =~ s/^(provider sink \{)/$providers\n$1/m;
    return $c;
}

sub herald_with
{
    my ($providers, $route) = @_;
    my $tt = Herald::Test->new;
    $tt->write_conf(conf_with($tt, $providers, $route));
    my ($rc, $out) = $tt->test_conf(env => \%env);
    is($rc, 0, "herald -t accepts: $route") or diag($out);
    $tt->run(env => \%env);
    return $tt;
}

sub terminal { my $s = shift // ''; $s eq 'delivered' || $s eq 'failed' }

sub send_mail
{
    my ($tt, $uid, $email, $content) = @_;
    my $r = $tt->put_user($uid, { email => $email });
    ok($r->{status} == 201 || $r->{status} == 200, "$uid: user")
        or diag(explain $r);
    $r = $tt->send_note({ user_id => $uid, channels => ['email'],
        email => $content // { subject => "Hi $uid", text => "Hello $uid" } });
    is($r->{status}, 202, "$uid: 202") or diag(explain $r);
    return $r->{json} && $r->{json}{id};
}

sub wait_done
{
    my ($tt, $nid, $timeout) = @_;
    my $n = $tt->wait_notification($nid, sub {
        my @s = $tt->delivery_statuses($_[0]);
        @s && !grep { !terminal($_) } @s;
    }, $timeout // 15);
    return $n && $n->{deliveries} ? $n->{deliveries}[0] : {};
}

sub mails_to
{
    my ($srv, $rcpt) = @_;
    return grep { !exists $_->{event}
        && grep { $_ eq $rcpt } @{$_->{rcpt_tos} // []} } $srv->lines;
}

# headers (unfolded, by lower-case name) and body of a raw message
sub parse_mail
{
    my ($raw) = @_;
    my ($head, $body) = split /\r\n\r\n/, $raw, 2;
    (my $h = $head) =~ s/\r\n([ \t])/$1/g;
    my %h;
    for (split /\r\n/, $h) {
        push @{$h{lc $1}}, $2 if /^([^:]+):[ \t]*(.*)$/;
    }
    return { head => $head, h => \%h, body => $body // '' };
}

# ==== configuration checks ================================================

{
    my $bad = Herald::Test->new;
    my $check = sub {
        my ($block, $re, $name) = @_;
        my $c = $bad->default_conf_text;
        $c =~ s/^(provider sink \{)/$block\n$1/m;
        $bad->write_conf($c);
        my ($rc, $out) = $bad->test_conf(env => \%env);
        isnt($rc, 0, "-t rejects: $name");
        like($out, $re, "-t message: $name");
    };
    $check->("provider a {\n type smtp;\n host h;\n from a\@b.c;\n"
        . " starttls off;\n username u;\n password p;\n}\n",
        qr/"username" needs "starttls on".* in \S+herald\.conf:\d+/,
        'AUTH without TLS');
    $check->("provider a {\n type smtp;\n host h;\n from a\@b.c;\n"
        . " starttls maybe;\n}\n",
        qr/invalid value "maybe" in "starttls".* in \S+herald\.conf:\d+/,
        'starttls maybe');
    $check->("provider a {\n type smtp;\n host h;\n from nobody;\n}\n",
        qr/invalid value "nobody" in "from"/, 'from not an address');
    $check->("provider a {\n type smtp;\n host h;\n from a\@b.c;\n"
        . " unsubscribe_url http://x/u;\n}\n",
        qr/"unsubscribe_url".* expected an https URL/, 'unsubscribe http');
    $check->("provider a {\n type smtp;\n from a\@b.c;\n}\n",
        qr/has no "host"/, 'host required');
    $check->("provider a {\n type sendgrid;\n from a\@b.c;\n}\n",
        qr/has no "api_key"/, 'sendgrid api_key required');
}

# ==== relay A: STARTTLS, AUTH PLAIN, PIPELINING ============================

my $tA = herald_with(smtp_block('mail', host => 'localhost',
    port => $sA->port), 'mail');

my $SUBJECT = "Gr\x{fc}\x{df}e \x{2713} from herald, a subject long enough "
    . "to need more than one encoded word on its line";
my $TEXT = "Hello \x{e9}t\x{e9}!\n.a line starting with a dot\n.\n"
    . ('long line ' x 30) . "\nlast line with a trailing space ";
my $HTML = "<p>Gr\x{fc}\x{df}e \x{2713}</p>\n<p>" . ('x' x 2000) . "</p>";

{
    my $nid = send_mail($tA, 'm-ok', 'alice@example.net',
        { subject => $SUBJECT, text => $TEXT, html => $HTML });
    my $d = wait_done($tA, $nid);
    is($d->{status}, 'delivered', 'A: delivered') or diag(explain $d);
    is($d->{provider}, 'mail', 'A: by the smtp provider');
    my @m = mails_to($sA, 'alice@example.net');
    is(scalar @m, 1, 'A: the server stored one message')
        or diag(explain [$sA->lines]);
    my $m = $m[0] // {};
    ok($m->{tls}, 'A: over STARTTLS');
    is($m->{auth}, 'mailer', 'A: authenticated as mailer');
    is($m->{helo}, 'herald.test', 'A: EHLO name');
    is($m->{mail_from}, 'alerts@example.org', 'A: envelope sender');
    my ($size) = map { /^SIZE=(\d+)$/ ? $1 : () } @{$m->{mail_options} // []};
    ok($size && abs($size - length($m->{data} // '')) < 200,
        "A: MAIL FROM carries SIZE= ($size)") or diag(explain $m);
    my @auth = $sA->events('auth');
    is($auth[0] && $auth[0]{mechanism}, 'PLAIN', 'A: AUTH PLAIN');

    my $p = parse_mail($m->{data} // '');
    my $h = $p->{h};
    like($h->{date}[0] // '',
        qr/^[A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d \+0000$/,
        'A: Date in RFC 5322 form');
    is(decode('MIME-Header', $h->{from}[0] // ''),
        "Acme Alerts \x{2713} <alerts\@example.org>",
        'A: From with an encoded display name');
    is($h->{to}[0], 'alice@example.net', 'A: To');
    like($h->{subject}[0] // '', qr/^=\?UTF-8\?[QB]\?/,
        'A: Subject as encoded words');
    is(decode('MIME-Header', $h->{subject}[0] // ''), $SUBJECT,
        'A: Subject decodes to what was sent');
    is($h->{'message-id'}[0], "<$d->{id}\@herald.test>",
        'A: Message-ID from the delivery id');
    is($d->{provider_message_id}, "<$d->{id}\@herald.test>",
        'A: the Message-ID is recorded on the delivery');
    is($h->{'mime-version'}[0], '1.0', 'A: MIME-Version');
    like($h->{'list-unsubscribe'}[0],
        qr{^<\Q$UNSUB\E/[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{22}>$},
        'A: List-Unsubscribe with a signed token');
    is($h->{'list-unsubscribe-post'}[0], 'List-Unsubscribe=One-Click',
        'A: List-Unsubscribe-Post one-click');
    my ($boundary) = ($h->{'content-type'}[0] // '')
        =~ m{^multipart/alternative;\s*boundary="([^"]+)"};
    ok($boundary, 'A: multipart/alternative with a boundary');
    my @parts = $boundary
        ? grep { /\S/ && !/^--\s*$/ }
          (split /\r\n--\Q$boundary\E/, "\r\n" . $p->{body})[1 .. 2]
        : ();
    is(scalar @parts, 2, 'A: two parts');
    my @pp = map { parse_mail(s/^\r\n//r) } @parts;
    is($pp[0] && $pp[0]{h}{'content-type'}[0], 'text/plain; charset=utf-8',
        'A: text/plain first');
    is($pp[1] && $pp[1]{h}{'content-type'}[0], 'text/html; charset=utf-8',
        'A: text/html last');
    is($pp[0] && $pp[0]{h}{'content-transfer-encoding'}[0],
        'quoted-printable', 'A: quoted-printable');
    my $text = $pp[0] ? decode('UTF-8', decode_qp($pp[0]{body})) : '';
    $text =~ s/\r\n/\n/g;
    $text =~ s/\n\z//;
    is($text, $TEXT, 'A: the text part decodes to what was sent '
        . '(dot lines, long lines, trailing space)');
    my $html = $pp[1] ? decode('UTF-8', decode_qp($pp[1]{body})) : '';
    $html =~ s/\r\n/\n/g;
    $html =~ s/\n\z//;
    is($html, $HTML, 'A: the html part decodes to what was sent');
    my @lines = split /\r\n/, $m->{data} // '';
    ok(!grep({ length > 998 } @lines), 'A: every line <= 998 octets');
    my @long = grep { length > 78 && !/^List-Unsubscribe: </ }
        split /\r\n/, $p->{head};
    ok(!@long, 'A: every header line <= 78 (but the unsubscribe URL)')
        or diag(explain \@long);
    ok(!grep({ length > 76 } map { split /\r\n/, $_->{body} } @pp),
        'A: quoted-printable lines <= 76');
    ok(($m->{data} // '') !~ /[^\x00-\x7f]/, 'A: 7-bit clean');
    ok(($m->{data} // '') !~ /(?<!\r)\n/, 'A: no bare LF');
}

{
    my @nids = map { send_mail($tA, "m-ka-$_", "ka$_\@example.net") } 1 .. 6;
    my @d = map { wait_done($tA, $_) } @nids;
    is(scalar(grep { ($_->{status} // '') eq 'delivered' } @d), 6,
        'A: 6 more delivered');
    cmp_ok(scalar($sA->events('connect')), '<=', 4,
        'A: connections reused (at most 2 per worker)');
}

{
    my $nid = send_mail($tA, 'm-bounce', 'bounce1@example.net');
    my $d = wait_done($tA, $nid);
    is($d->{status}, 'failed', '550: failed') or diag(explain $d);
    is($d->{reason}, 'invalid_address', '550: the address bounces');
    is($d->{last_error}, '550 bouncing', '550: detail');
    is($d->{attempts}, 1, '550: not retried');

    $nid = send_mail($tA, 'm-temp', 'tempfail1@example.net');
    $d = wait_done($tA, $nid);
    is($d->{status}, 'failed', '451: failed in the end') or diag(explain $d);
    is($d->{reason}, 'attempts_exhausted', '451: retried to exhaustion');
    is($d->{attempts}, 3, '451: 3 attempts');
    like($d->{last_error} // '', qr/^4\.3\.0 mailbox temporarily/,
        '451: detail is the reply');

    $nid = send_mail($tA, 'm-grey', 'grey1@example.net');
    $d = wait_done($tA, $nid);
    is($d->{status}, 'delivered', '450 greylisting: delivered on retry')
        or diag(explain $d);
    is($d->{attempts}, 2, '450 greylisting: 2 attempts');

    $nid = send_mail($tA, 'm-data', 'datafail1@example.net');
    $d = wait_done($tA, $nid);
    is($d->{status}, 'failed', '554 after DATA: failed') or diag(explain $d);
    is($d->{reason}, 'rejected', '554 after DATA: rejected');
    like($d->{last_error} // '', qr/message content rejected/,
        '554 after DATA: detail');

    # the pooled connections still work after RSET
    $nid = send_mail($tA, 'm-after', 'after@example.net');
    $d = wait_done($tA, $nid);
    is($d->{status}, 'delivered', 'after failures: delivered (RSET)');
}
$tA->stop;

# ==== relay B: AUTH LOGIN, no PIPELINING, SIZE 3000 ========================

{
    my $tB = herald_with(smtp_block('mail', host => '127.0.0.1',
        port => $sB->port), 'mail');
    my $nid = send_mail($tB, 'b-ok', 'bob@example.net');
    my $d = wait_done($tB, $nid);
    is($d->{status}, 'delivered', 'B: delivered') or diag(explain $d);
    my @auth = $sB->events('auth');
    is($auth[0] && $auth[0]{mechanism}, 'LOGIN', 'B: AUTH LOGIN');
    is(scalar mails_to($sB, 'bob@example.net'), 1, 'B: stored');

    $nid = send_mail($tB, 'b-big', 'big@example.net',
        { subject => 'big', text => 'y' x 5000 });
    $d = wait_done($tB, $nid);
    is($d->{status}, 'failed', 'over SIZE: failed') or diag(explain $d);
    like($d->{last_error} // '', qr/^552 .*SIZE 3000/, 'over SIZE: detail');
    is($d->{attempts}, 1, 'over SIZE: not retried');
    is(scalar mails_to($sB, 'big@example.net'), 0, 'over SIZE: not sent');

    $nid = send_mail($tB, 'b-bounce', 'bounce2@example.net');
    $d = wait_done($tB, $nid);
    is($d->{last_error}, '550 bouncing', 'B: 550 without pipelining');
    $nid = send_mail($tB, 'b-ok2', 'bob2@example.net');
    $d = wait_done($tB, $nid);
    is($d->{status}, 'delivered', 'B: delivered after a bounce');
    $tB->stop;
}

# ==== relay C: no STARTTLS ================================================

{
    my $tC = herald_with(smtp_block('strict', host => '127.0.0.1',
        port => $sC->port, noauth => 1, attempts => 1), 'strict');
    my $nid = send_mail($tC, 'c-1', 'carol@example.net');
    my $d = wait_done($tC, $nid);
    is($d->{status}, 'failed', 'no STARTTLS: not delivered')
        or diag(explain $d);
    like($d->{last_error} // '', qr/does not offer STARTTLS/,
        'no STARTTLS: says why');
    is(scalar(grep { !exists $_->{event} } $sC->lines), 0,
        'no STARTTLS: the server got no message');
    $tC->stop;

    my $tC2 = herald_with(smtp_block('lax', host => '127.0.0.1',
        port => $sC->port, noauth => 1, extra => 'starttls off;'), 'lax');
    $nid = send_mail($tC2, 'c-2', 'carol2@example.net');
    $d = wait_done($tC2, $nid);
    is($d->{status}, 'delivered', '"starttls off": plain relay allowed');
    my @m = mails_to($sC, 'carol2@example.net');
    ok(@m && !$m[0]{tls}, '"starttls off": sent in clear');
    $tC2->stop;
}

# ==== SendGrid ============================================================

{
    my $tS = herald_with(sendgrid_block('sg'), 'sg');
    my $nid = send_mail($tS, 's-ok', 'sam@example.net',
        { subject => $SUBJECT, text => 'plain', html => '<b>html</b>' });
    my $d = wait_done($tS, $nid);
    is($d->{status}, 'delivered', 'sendgrid: delivered') or diag(explain $d);
    my @r = grep { !exists $_->{event} && $_->{json} } $sg->lines;
    my ($q) = grep { $_->{json}{personalizations}[0]{to}[0]{email} eq
        'sam@example.net' } @r;
    ok($q, 'sendgrid: the fake got it') or diag(explain \@r);
    $q //= { json => {}, headers => {} };
    is($q->{headers}{authorization}, 'Bearer SG.key-1', 'sendgrid: bearer');
    is($q->{status}, 202, 'sendgrid: 202');
    is($d->{provider_message_id}, $q->{message_id},
        'sendgrid: X-Message-Id recorded');
    is($q->{json}{subject}, $SUBJECT, 'sendgrid: subject');
    is_deeply([map { $_->{type} } @{$q->{json}{content} // []}],
        ['text/plain', 'text/html'], 'sendgrid: text then html');
    is($q->{json}{from}{email}, 'alerts@example.org', 'sendgrid: from');
    is($q->{json}{personalizations}[0]{custom_args}{delivery_id}, $d->{id},
        'sendgrid: delivery id in custom_args');
    like($q->{json}{headers}{'List-Unsubscribe'} // '',
        qr{^<\Q$UNSUB\E/[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{22}>$},
        'sendgrid: List-Unsubscribe with a signed token');
    is($q->{json}{headers}{'List-Unsubscribe-Post'},
        'List-Unsubscribe=One-Click', 'sendgrid: List-Unsubscribe-Post');

    $nid = send_mail($tS, 's-rate', 'rate1@example.net');
    $d = wait_done($tS, $nid);
    is($d->{status}, 'delivered', 'sendgrid 429: delivered on retry')
        or diag(explain $d);
    is($d->{attempts}, 2, 'sendgrid 429: 2 attempts');

    $nid = send_mail($tS, 's-bad', 'bad1@example.net');
    $d = wait_done($tS, $nid);
    is($d->{status}, 'failed', 'sendgrid 400: failed');
    like($d->{last_error} // '', qr/^sendgrid 400 Does not contain/,
        'sendgrid 400: detail');
    $tS->stop;
}

# ==== failover: a dead relay, then SendGrid ==============================

{
    my $dead = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
        LocalPort => 0, Proto => 'tcp', Listen => 1);
    my $dport = $dead->sockport;
    close $dead;    # nothing listens there now
    my $tF = herald_with(smtp_block('mail', host => '127.0.0.1',
        port => $dport) . sendgrid_block('sg'), 'mail sg');
    my $nid = send_mail($tF, 'f-1', 'fo@example.net');
    my $d = wait_done($tF, $nid);
    is($d->{status}, 'delivered', 'failover: delivered') or diag(explain $d);
    is($d->{provider}, 'sg', 'failover: by sendgrid');
    like(join(' ', map { $_->{detail} // '' } @{$d->{timeline} // []}),
        qr/connect\(\) to 127\.0\.0\.1:$dport failed/,
        'failover: the smtp connect error is in the timeline');
    $tF->stop;
}

$_->stop for $sA, $sB, $sC, $sg;
done_testing();
