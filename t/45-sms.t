#!/usr/bin/perl

# SMS providers (issue 5, part 2) against t/fake/twilio.js and
# t/fake/vonage.js: HTTPS servers with a test CA that check credentials
# and form fields as the real APIs do and answer with their error bodies.
#
# Covered: config checks (-t, "in FILE:LINE"); Twilio's request (path,
# basic auth from an environment variable, To/From/Body/StatusCallback
# with the delivery id), 201 recorded with the message SID, keep-alive
# (one connection for many messages); 21610 -> failed invalid_address with
# "21610 unsubscribed"; 21211 -> failed; 429 and 503 retried after
# Retry-After; a request never answered times out into a retry;
# max_segments; failover twilio -> vonage on 5xx; Vonage's request (no
# '+', type unicode for UCS-2, client-ref) and its per-message statuses
# (1 retried, 7 dead address, 3 failed); a server with an unknown CA is
# refused.

use strict;
use warnings;

use Test::More;
binmode(Test::More->builder->$_, ':utf8')
    for qw(output failure_output todo_output);
use Herald::Test;
use Herald::Push;

my $why = Herald::Push::have_tools();
plan(skip_all => $why) if $why;

my $t = Herald::Test->new;
my $dir = $t->dir;
my $pki = Herald::Push::make_pki($dir);
my @tls = ('--cert', $pki->{cert}, '--key', $pki->{key});

my $tw = Herald::Push->start_fake('twilio', $dir, @tls,
    '--account', 'AC0123456789', '--token', 'tw-secret-token');
my $vo = Herald::Push->start_fake('vonage', $dir, @tls,
    '--api-key', 'vkey', '--api-secret', 'vsecret');

my $CB = 'https://herald.example.com/v1/callbacks/twilio';

sub twilio_block
{
    my ($name, %o) = @_;
    my $extra = $o{extra} // '';
    return <<"EOF";
provider $name {
    type twilio;
    url https://127.0.0.1:$o{port};
    account_sid AC0123456789;
    auth_token \$TWILIO_TOKEN;
    from +15550001111;
    status_callback $CB;
    max_segments 2;
    ca_file $pki->{ca};
    connections 2;
    timeout 1s;
    retry attempts 3 base 100ms max 300ms;
    $extra
}
EOF
}

sub vonage_block
{
    my ($name, %o) = @_;
    return <<"EOF";
provider $name {
    type vonage;
    url https://localhost:$o{port};
    api_key vkey;
    api_secret \$VONAGE_SECRET;
    from Herald;
    ca_file $pki->{ca};
    timeout 1s;
    retry attempts 3 base 100ms max 300ms;
}
EOF
}

my %env = (TWILIO_TOKEN => 'tw-secret-token', VONAGE_SECRET => 'vsecret');

sub conf_with
{
    my ($tt, $providers, $route) = @_;
    my $c = $tt->default_conf_text(workers => 2);
    $c =~ s/^channel sms .*$/channel sms { provider $route; }/m
        or die "no sms channel in the default conf";
    $c =~ s/^(provider sink \{)/$providers\n$1/m;
    return $c;
}

# ==== configuration checks ================================================

{
    my $bad = Herald::Test->new;
    my $check = sub {
        my ($block, $re, $name, $at) = @_;
        my $c = $bad->default_conf_text;
        $c =~ s/^(provider sink \{)/$block\n$1/m;
        $bad->write_conf($c);
        my ($rc, $out) = $bad->test_conf(env => \%env);
        isnt($rc, 0, "-t rejects: $name");
        like($out, $re, "-t message: $name");
        if (defined $at) {
            my @l = split /\n/, $c;
            my ($line) = grep { $l[$_ - 1] =~ /^\s*\Q$at\E\b/ } 1 .. @l;
            like($out, qr/herald\.conf:$line\b/, "-t line: $name");
        }
    };
    $check->("provider a {\n type twilio;\n account_sid AC1;\n"
        . " auth_token x;\n}\n",
        qr/needs either "from" or "messaging_service_sid" in \S+:\d+/,
        'twilio without from');
    $check->("provider a {\n type twilio;\n account_sid AC1;\n"
        . " auth_token x;\n from +1555;\n max_segments 0;\n}\n",
        qr/"max_segments" directive.* in \S+herald\.conf:\d+/,
        'max_segments 0', 'max_segments');
    $check->("provider a {\n type twilio;\n account_sid AC1;\n"
        . " auth_token x;\n from +1555;\n url ftp://x;\n}\n",
        qr/invalid value "ftp:\/\/x" in "url"/, 'url ftp', 'url');
    $check->("provider a {\n type twilio;\n from +1555;\n"
        . " auth_token x;\n}\n", qr/has no "account_sid"/,
        'account_sid required');
    $check->("provider a {\n type vonage;\n api_key k;\n api_secret s;\n"
        . " from H;\n colour blue;\n}\n",
        qr/unknown directive "colour" .* in \S+herald\.conf:\d+/,
        'vonage unknown setting', 'colour');
    $check->("provider a {\n type twilio;\n account_sid AC1;\n"
        . " auth_token \$NO_SUCH_VAR_HERE;\n from +1555;\n}\n",
        qr/environment variable "NO_SUCH_VAR_HERE" is not set/,
        'auth_token from an unset variable');
}

# ==== herald with twilio only =============================================

$t->write_conf(conf_with($t, twilio_block('tw', port => $tw->port), 'tw'));
{
    my ($rc, $out) = $t->test_conf(env => \%env);
    is($rc, 0, 'herald -t accepts the twilio provider') or diag($out);
}
$t->run(env => \%env);

sub terminal { my $s = shift // ''; $s eq 'delivered' || $s eq 'failed' }

sub send_sms
{
    my ($tt, $uid, $phone, $body) = @_;
    my $r = $tt->put_user($uid, { phone => $phone });
    ok($r->{status} == 201 || $r->{status} == 200, "$uid: user")
        or diag(explain $r);
    $r = $tt->send_note({ user_id => $uid, channels => ['sms'],
        body => $body // "Hello $uid" });
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

sub form_for
{
    my ($fake, $to) = @_;
    return grep { $_->{form} && ($_->{form}{To} // $_->{form}{to} // '')
        eq $to } grep { !exists $_->{event} } $fake->lines;
}

# ---- a message, what Twilio receives --------------------------------------

{
    my $nid = send_sms($t, 'sms-ok', '+15551230001', "Gr\x{fc}\x{df}e & more");
    my $d = wait_done($t, $nid);
    is($d->{status}, 'delivered', 'ok: delivered') or diag(explain $d);
    is($d->{provider}, 'tw', 'ok: by tw');
    my @r = form_for($tw, '+15551230001');
    is(scalar @r, 1, 'ok: one request') or diag(explain \@r);
    my $q = $r[0] // {};
    is($q->{path}, '/2010-04-01/Accounts/AC0123456789/Messages.json',
        'ok: path');
    is($q->{auth}, 'AC0123456789:tw-secret-token',
        'ok: basic auth = account SID : auth token (from $TWILIO_TOKEN)');
    like($q->{headers}{'content-type'} // '',
        qr{^application/x-www-form-urlencoded}, 'ok: form content type');
    is($q->{form}{From}, '+15550001111', 'ok: From');
    is($q->{form}{Body}, "Gr\x{fc}\x{df}e & more",
        'ok: Body (UTF-8, form-encoded)');
    is($q->{form}{StatusCallback}, "$CB?delivery=$d->{id}",
        'ok: StatusCallback carries the delivery id');
    is($q->{status}, 201, 'ok: the fake answered 201');
    is($d->{provider_message_id}, $q->{sid}, 'ok: the message SID is recorded')
        or diag(explain $d);
    like($q->{sid} // '', qr/^SM[0-9a-f]{32}$/, 'ok: SID shape');
}

# ---- keep-alive: many messages, few connections ---------------------------

{
    my @nids = map { send_sms($t, "sms-ka-$_", sprintf('+1555123%04d', 100 + $_)) }
        1 .. 8;
    my @d = map { wait_done($t, $_) } @nids;
    is(scalar(grep { ($_->{status} // '') eq 'delivered' } @d), 8,
        'keep-alive: 8 delivered');
    my @conns = $tw->events('connect');
    cmp_ok(scalar @conns, '<=', 4,
        'keep-alive: at most 2 connections per worker for 9 messages')
        or diag(explain \@conns);
}

# ---- error codes ----------------------------------------------------------

{
    my $nid = send_sms($t, 'sms-stop', '+15551230610');
    my $d = wait_done($t, $nid);
    is($d->{status}, 'failed', '21610: failed') or diag(explain $d);
    is($d->{reason}, 'unsubscribed', '21610: the recipient unsubscribed');
    is($d->{last_error}, '21610 unsubscribed', '21610: detail');
    is($d->{attempts}, 1, '21610: not retried');

    $nid = send_sms($t, 'sms-inval', '+15551231211');
    $d = wait_done($t, $nid);
    is($d->{status}, 'failed', '21211: failed') or diag(explain $d);
    is($d->{reason}, 'rejected', '21211: rejected, not a dead address');
    is($d->{last_error}, '21211 invalid number', '21211: detail');
    is($d->{attempts}, 1, '21211: not retried');
}

for my $case (['0429', '429 20429'], ['0503', '503']) {
    my ($tail, $what) = @$case;
    my $phone = "+1555124$tail";
    my $nid = send_sms($t, "sms-$tail", $phone);
    my $d = wait_done($t, $nid);
    is($d->{status}, 'delivered', "$what: delivered on retry")
        or diag(explain $d);
    is($d->{attempts}, 2, "$what: 2 attempts");
    my @r = form_for($tw, $phone);
    is(scalar @r, 2, "$what: two requests");
    if (@r == 2) {
        cmp_ok($r[1]{at} - $r[0]{at}, '>=', 900,
            "$what: Retry-After: 1 honoured ("
            . ($r[1]{at} - $r[0]{at}) . " ms)");
    }
}

{
    my $nid = send_sms($t, 'sms-slow', '+15551250999');
    my $d = wait_done($t, $nid, 20);
    is($d->{status}, 'failed', 'never answered: failed after retries')
        or diag(explain $d);
    is($d->{reason}, 'attempts_exhausted', 'never answered: attempts');
    like($d->{last_error} // '', qr/timed out/, 'never answered: timed out');
    is($d->{attempts}, 3, 'never answered: 3 attempts');
}

{
    # max_segments 2: 307 GSM-7 characters take 3 segments
    my $nid = send_sms($t, 'sms-long', '+15551260001', 'x' x 307);
    my $d = wait_done($t, $nid);
    is($d->{status}, 'failed', 'too long: failed') or diag(explain $d);
    like($d->{last_error} // '', qr/3 gsm7 segments, max_segments is 2/,
        'too long: detail');
    is(scalar form_for($tw, '+15551260001'), 0, 'too long: never sent');
    $nid = send_sms($t, 'sms-long2', '+15551260002', 'x' x 306);
    $d = wait_done($t, $nid);
    is($d->{status}, 'delivered', '306 GSM-7 characters (2 segments) go');
}

$t->stop;

# ==== failover twilio -> vonage, and vonage's statuses ====================

my $t2 = Herald::Test->new;
$t2->write_conf(conf_with($t2,
    twilio_block('tw', port => $tw->port)
    . vonage_block('vo', port => $vo->port), 'tw vo'));
$t2->run(env => \%env);

{
    my $nid = send_sms($t2, 'fo-1', '+15551270500', "\x{416}\x{416} hi");
    my $d = wait_done($t2, $nid);
    is($d->{status}, 'delivered', 'failover: delivered') or diag(explain $d);
    is($d->{provider}, 'vo', 'failover: by vonage');
    is(scalar form_for($tw, '+15551270500'), 1, 'failover: twilio tried once');
    my @v = form_for($vo, '15551270500');
    is(scalar @v, 1, 'failover: vonage got it, number without +')
        or diag(explain [$vo->lines]);
    my $f = $v[0] ? $v[0]{form} : {};
    is($f->{api_key}, 'vkey', 'vonage: api_key');
    is($f->{api_secret}, 'vsecret', 'vonage: api_secret from $VONAGE_SECRET');
    is($f->{from}, 'Herald', 'vonage: from');
    is($f->{type}, 'unicode', 'vonage: type unicode for Cyrillic');
    is($f->{text}, "\x{416}\x{416} hi", 'vonage: text');
    is($f->{'client-ref'}, $d->{id}, 'vonage: client-ref is the delivery id');
    is($d->{provider_message_id}, $v[0] && $v[0]{message_id},
        'vonage: message-id recorded');
}

my $t3 = Herald::Test->new;
$t3->write_conf(conf_with($t3, vonage_block('vo', port => $vo->port), 'vo'));
$t3->run(env => \%env);
{
    my $nid = send_sms($t3, 'v-ok', '+15551290002', 'plain text');
    my $d = wait_done($t3, $nid);
    is($d->{status}, 'delivered', 'vonage alone: delivered');
    my @v = form_for($vo, '15551290002');
    is($v[0] && $v[0]{form}{type}, 'text', 'vonage: type text for GSM-7');

    $nid = send_sms($t3, 'v-thr', '+15551290001');
    $d = wait_done($t3, $nid);
    is($d->{status}, 'delivered', 'vonage status 1: retried, delivered')
        or diag(explain $d);
    is($d->{attempts}, 2, 'vonage status 1: 2 attempts');

    $nid = send_sms($t3, 'v-bar', '+15551290007');
    $d = wait_done($t3, $nid);
    is($d->{status}, 'failed', 'vonage status 7: failed');
    is($d->{reason}, 'invalid_address', 'vonage status 7: dead address');
    like($d->{last_error} // '', qr/^vonage 7 /, 'vonage status 7: detail');

    $nid = send_sms($t3, 'v-inv', '+15551290003');
    $d = wait_done($t3, $nid);
    is($d->{status}, 'failed', 'vonage status 3: failed');
    is($d->{reason}, 'rejected', 'vonage status 3: rejected');
    is($d->{attempts}, 1, 'vonage status 3: not retried');
}
$t3->stop;
$t2->stop;

# ==== a server whose certificate we do not trust ==========================

{
    my $other = Herald::Test->new;
    my $opki = Herald::Push::make_pki($other->dir);
    my $ftw = Herald::Push->start_fake('twilio', $other->dir,
        '--cert', $opki->{cert}, '--key', $opki->{key},
        '--account', 'AC0123456789', '--token', 'tw-secret-token');
    $other->write_conf(conf_with($other,
        twilio_block('tw', port => $ftw->port), 'tw'));
    $other->run(env => \%env);
    my $nid = send_sms($other, 'untrusted', '+15551300001');
    my $d = wait_done($other, $nid, 20);
    is($d->{status}, 'failed', 'untrusted CA: never delivered')
        or diag(explain $d);
    like($d->{last_error} // '', qr/certificate verify failed/,
        'untrusted CA: certificate verify failed');
    is(scalar form_for($ftw, '+15551300001'), 0,
        'untrusted CA: the fake got nothing');
    $other->stop;
    $ftw->stop;
}

$tw->stop;
$vo->stop;
done_testing();
