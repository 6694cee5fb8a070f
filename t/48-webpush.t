#!/usr/bin/perl

# Web Push provider (issue 5 part 1): RFC 8030 pushes to browser
# subscriptions, RFC 8291 aes128gcm encryption, RFC 8292 VAPID. Two peers:
#
#  - t/fake/webpush.js, ours: a push service that holds each
#    subscription's private key, verifies the VAPID token (signature with
#    k, aud = its origin, exp within 24 h, sub) and decrypts the body as a
#    browser would; scripted 404/410/413/429/503/400 answers.
#  - web-push-testing (npm, third party), installed at test time into
#    t/tmp/npm and run behind HTTPS by t/fake/webpush-testing.js (herald
#    takes only https:// endpoints; its CLI serves plain HTTP). It checks
#    VAPID against the subscription's applicationServerKey and decrypts
#    with http_ece: herald's message must arrive there decrypted and intact.
#    Skipped with a message when npm cannot install it.
#
# Covered: config checks (-t), the payload {title, body, icon, url, data}
# decrypted intact (UTF-8 too), TTL from the notification's ttl, Urgency
# from priority, VAPID claims and one token reused per origin, Location
# kept as the provider message id, 404/410 removing the device, 413 and
# 400 failing, 403 (a subscription of another application server key)
# failing, 429/503 retried after Retry-After then delivered.

use strict;
use warnings;
use utf8;

use Test::More;
use Cwd qw(abs_path);
use Encode ();
use File::Basename qw(dirname);
use MIME::Base64 qw(encode_base64);
use Time::HiRes qw(time);
use Herald::Test;
use Herald::Push;

my $why = Herald::Push::have_tools();
plan(skip_all => $why) if $why;
plan(skip_all => 'curl not found') if system('curl --version >/dev/null 2>&1');

my $ROOT = abs_path(dirname(__FILE__) . '/..');
my $WPT_VERSION = '1.2.2';

my $t = Herald::Test->new;
my $dir = $t->dir;
my $pki = Herald::Push::make_pki($dir);
my $vapid = Herald::Push::make_apns_key($dir, 'vapid');     # EC P-256 PEM
my $other = Herald::Push::make_apns_key($dir, 'other');

# The public key browsers need (applicationServerKey): base64url of the
# uncompressed point, the last 65 bytes of the SubjectPublicKeyInfo.
sub vapid_public
{
    my ($pem) = @_;
    my $der = `openssl pkey -in $pem -pubout -outform DER 2>/dev/null`;
    my $b = encode_base64(substr($der, -65), '');
    $b =~ tr{+/}{-_};
    $b =~ s/=+$//;
    return $b;
}
my $pub = vapid_public($vapid->{p8});
my $other_pub = vapid_public($other->{p8});
is(length $pub, 87, 'VAPID public key: 87 base64url characters');

# POST JSON to a peer over HTTPS (the test CA); the decoded answer.
sub post_json
{
    my ($url, $body) = @_;
    my $json = Herald::Push::JSON()->encode($body // {});
    my $f = "$dir/post.json";
    open(my $fh, '>', $f) or die $!;
    print $fh $json;
    close $fh;
    my $out = `curl -s -m 10 --cacert $pki->{ca} -X POST -H 'Content-Type: application/json' --data-binary \@$f '$url'`;
    return eval { Herald::Push::JSON()->decode($out) };
}

my $fake = Herald::Push->start_fake('webpush', $dir, '--cert', $pki->{cert},
    '--key', $pki->{key});
my $origin = 'https://127.0.0.1:' . $fake->port;

# ==== web-push-testing from npm =============================================

my ($wpt, $wpt_why);
{
    my $npm_dir = "$ROOT/t/tmp/npm";
    my $mod = "$npm_dir/node_modules/web-push-testing";
    my $have = sub {
        my $p = eval { Herald::Push::JSON()->decode(
            do { local (@ARGV, $/) = ("$mod/package.json"); <> }) };
        return $p && ($p->{version} // '') eq $WPT_VERSION
            && -f "$mod/src/server.js";
    };
    if (!$have->()) {
        if (system('npm --version >/dev/null 2>&1') != 0) {
            $wpt_why = 'npm not found';
        } else {
            system('mkdir', '-p', $npm_dir);
            my $rc = system("timeout 180 npm install --prefix $npm_dir "
                . "--no-audit --no-fund --no-save --loglevel=error "
                . "web-push-testing\@$WPT_VERSION >$dir/npm.log 2>&1");
            if ($rc != 0 || !$have->()) {
                my $log = do { local (@ARGV, $/) = ("$dir/npm.log"); <> };
                $wpt_why = "npm install web-push-testing\@$WPT_VERSION failed: "
                    . substr($log // '', 0, 300);
            }
        }
    }
    if (!$wpt_why) {
        $wpt = eval { Herald::Push->start_fake('webpush-testing', $dir,
            '--module', $mod, '--cert', $pki->{cert}, '--key', $pki->{key}) };
        $wpt_why = "web-push-testing did not start: $@" unless $wpt;
    }
}

# ==== configuration ========================================================

my $provider = <<"EOF";
provider wp {
    type webpush;
    vapid_private_key $vapid->{p8};
    vapid_subject mailto:ops\@herald.test;
    ca_file $pki->{ca};
    connections 2;
    timeout 3s;
    retry attempts 3 base 100ms max 500ms;
}
EOF

my $conf = $t->default_conf_text(workers => 2, channels => { web => 'wp' });
$conf =~ s/^(provider sink \{)/$provider\n$1/m or die 'no sink provider';
$t->write_conf($conf);

{
    my ($rc, $out) = $t->test_conf;
    is($rc, 0, 'herald -t accepts the webpush provider') or diag($out);

    my $bad = Herald::Test->new;
    my $check = sub {
        my ($block, $re, $name) = @_;
        my $c = $bad->default_conf_text;
        $c =~ s/^(provider sink \{)/$block\n$1/m;
        $bad->write_conf($c);
        my ($brc, $bout) = $bad->test_conf;
        isnt($brc, 0, "-t rejects: $name");
        like($bout, $re, "-t message: $name");
    };
    $check->("provider a {\n type webpush;\n vapid_private_key $vapid->{p8};\n}\n",
        qr/has no "vapid_subject" in \S+herald\.conf:\d+/, 'no vapid_subject');
    $check->("provider a {\n type webpush;\n vapid_private_key $vapid->{p8};\n"
        . " vapid_subject ops\@x;\n}\n",
        qr/"vapid_subject" directive, expected mailto:.* in \S+herald\.conf:\d+/,
        'vapid_subject not a URI');
    $check->("provider a {\n type webpush;\n vapid_private_key $pki->{ca};\n"
        . " vapid_subject mailto:a\@b;\n}\n",
        qr/vapid_private_key .*P-256.* in \S+herald\.conf:\d+/,
        'vapid_private_key not a key');
    $check->("provider a {\n type webpush;\n vapid_private_key $vapid->{p8};\n"
        . " vapid_subject mailto:a\@b;\n ttl forever;\n}\n",
        qr/"ttl" directive.* in \S+herald\.conf:\d+/, 'bad ttl');
    $check->("provider a {\n type webpush;\n vapid_private_key $vapid->{p8};\n"
        . " vapid_subject mailto:a\@b;\n gcm_key x;\n}\n",
        qr/unknown directive "gcm_key"/, 'unknown setting');
}

$t->run;

# ==== helpers ==============================================================

sub devices_of
{
    my ($uid) = @_;
    my $r = $t->http(GET => "/v1/users/$uid/devices");
    return $r->{json} && $r->{json}{devices} || [];
}

# A user with one web device of subscription SUB; returns the device id.
sub user_with_sub
{
    my ($uid, $sub) = @_;
    $t->put_user($uid, {});
    my $r = $t->add_device($uid, { platform => 'web', subscription => {
        endpoint => $sub->{endpoint}, keys => $sub->{keys} } });
    ok($r->{status} == 201 || $r->{status} == 200, "$uid: web device")
        or diag(explain $r);
    return $r->{json} && $r->{json}{device}{id};
}

sub subscribe
{
    my (%o) = @_;
    my $s = post_json("$origin/subscribe",
        { applicationServerKey => $o{key} // $pub, script => $o{script} // [] });
    ok($s && $s->{endpoint}, 'fake: subscribed') or diag(explain $s);
    return $s;
}

sub send_web
{
    my ($uid, %body) = @_;
    my $r = $t->send_note({ user_id => $uid, channels => ['web'],
        title => 'Hello', body => 'World', %body });
    is($r->{status}, 202, "$uid: 202") or diag(explain $r);
    return $r->{json} && $r->{json}{id};
}

sub terminal { my $s = shift; $s eq 'delivered' || $s eq 'failed' }

sub wait_done
{
    my ($nid, $timeout) = @_;
    my $n = $t->wait_notification($nid, sub {
        my @s = $t->delivery_statuses($_[0]);
        @s && !grep { !terminal($_) } @s;
    }, $timeout // 15);
    return $n && $n->{deliveries} ? $n->{deliveries}[0] : {};
}

sub pushes_for
{
    my ($f, $id) = @_;
    return grep { ($_->{id} // '') eq $id } $f->lines;
}

# ==== our fake: the message decrypted, headers, VAPID ======================

{
    my $s = subscribe();
    user_with_sub('wp-a', $s);
    my $t0 = time;
    my $nid = send_web('wp-a', title => "Grüße", body => "Café ✓ 10 €",
        web => { icon => '/icon.png', url => 'https://example.com/x' },
        data => { order => '42', tag => 'a' },
        priority => 'high', ttl => 600);
    my $d = wait_done($nid);
    is($d->{status}, 'delivered', 'delivered') or diag(explain $d);
    my ($p) = grep { $_->{status} == 201 } pushes_for($fake, $s->{id});
    ok($p, 'the fake decrypted and accepted it') or diag(explain [$fake->lines]);
    $p //= {};
    is_deeply($p->{payload}, { title => "Grüße", body => "Café ✓ 10 €",
        icon => '/icon.png', url => 'https://example.com/x',
        data => { order => '42', tag => 'a' } },
        'payload {title, body, icon, url, data} intact')
        or diag(explain $p);
    is($p->{urgency}, 'high', 'Urgency: high from priority high');
    ok($p->{ttl} >= 590 && $p->{ttl} <= 600, "TTL from ttl 600: $p->{ttl}");
    is($p->{headers}{'content-type'}, 'application/octet-stream',
        'Content-Type: application/octet-stream');
    is($p->{claims}{aud}, $origin, 'VAPID aud: the endpoint origin');
    is($p->{claims}{sub}, 'mailto:ops@herald.test', 'VAPID sub');
    my $left = ($p->{claims}{exp} // 0) - $t0;
    ok($left > 11 * 3600 && $left <= 12 * 3600 + 5,
        "VAPID exp 12 h ahead ($left s)");
    like($p->{headers}{authorization} // '', qr/^vapid t=[\w-]+\.[\w-]+\.[\w-]+, k=\Q$pub\E$/,
        'Authorization: vapid t=..., k=public key');
    like($d->{provider_message_id} // '', qr{^\Q$origin\E/message/\d+$},
        'Location kept as the provider message id');

    # low priority, no ttl: Urgency low, a TTL; the same token again
    my $nid2 = send_web('wp-a', priority => 'low');
    is(wait_done($nid2)->{status}, 'delivered', 'second: delivered');
    my @ok = grep { $_->{status} == 201 } pushes_for($fake, $s->{id});
    is($ok[1] && $ok[1]{urgency}, 'low', 'Urgency: low from priority low');
    ok($ok[1] && $ok[1]{ttl} > 0, 'TTL present without a ttl: '
        . ($ok[1] ? $ok[1]{ttl} : ''));
    ok($ok[1] && !defined $ok[1]{topic}, 'no Topic without a collapse id');

    # more pushes: one token per origin and worker, reused
    my @n = map { send_web('wp-a', body => "n$_") } 1 .. 6;
    wait_done($_) for @n;
    my %tokens = map { ($_->{headers}{authorization} // '') => 1 }
        grep { $_->{status} == 201 } pushes_for($fake, $s->{id});
    ok(keys %tokens <= 2, 'the VAPID token is reused (' . scalar(keys %tokens)
        . ' for 8 pushes, 2 workers)');
}

# ==== outcomes ==============================================================

for my $code (404, 410) {
    my $uid = "wp-gone-$code";
    my $s = subscribe(script => [$code]);
    my $dev = user_with_sub($uid, $s);
    my $d = wait_done(send_web($uid));
    is($d->{status}, 'failed', "$code: failed");
    is($d->{reason}, 'invalid_token', "$code: invalid_token");
    like($d->{last_error} // '', qr/^web push $code/, "$code: detail");
    ok(!grep({ $_->{id} eq $dev } @{devices_of($uid)}),
        "$code: the subscription is removed") or diag(explain devices_of($uid));
}

for my $c ([413, qr/^web push 413/], [400, qr/^web push 400/]) {
    my ($code, $re) = @$c;
    my $uid = "wp-fail-$code";
    my $s = subscribe(script => [$code]);
    my $dev = user_with_sub($uid, $s);
    my $d = wait_done(send_web($uid));
    is($d->{status}, 'failed', "$code: failed for good");
    is($d->{attempts}, 1, "$code: not retried");
    like($d->{last_error} // '', $re, "$code: detail");
    ok(grep({ $_->{id} eq $dev } @{devices_of($uid)}),
        "$code: the subscription stays");
}

{
    # a subscription of another application server: VAPID k mismatch
    my $s = subscribe(key => $other_pub);
    user_with_sub('wp-403', $s);
    my $d = wait_done(send_web('wp-403'));
    is($d->{status}, 'failed', '403: failed');
    like($d->{last_error} // '', qr/^web push 403 .*applicationServerKey/,
        '403: detail');
}

for my $code (429, 503) {
    my $uid = "wp-retry-$code";
    my $s = subscribe(script => [$code]);
    user_with_sub($uid, $s);
    my $d = wait_done(send_web($uid), 20);
    is($d->{status}, 'delivered', "$code: retried, then delivered");
    is($d->{attempts}, 2, "$code: two attempts");
    my @p = pushes_for($fake, $s->{id});
    is(join(',', map { $_->{status} } @p), "$code,201", "$code: then 201");
    ok(@p == 2 && $p[1]{at} - $p[0]{at} >= 900,
        "$code: Retry-After 1 honoured (" . (@p == 2 ? $p[1]{at} - $p[0]{at} : '?')
        . ' ms)');
}

# ==== web-push-testing (third-party mock) ==================================

SKIP: {
    skip("web-push-testing: $wpt_why", 12) if $wpt_why;
    my $wurl = 'https://127.0.0.1:' . $wpt->port;
    my $r = post_json("$wurl/subscribe",
        { userVisibleOnly => 'true', applicationServerKey => $pub });
    my $s = $r && $r->{data};
    ok($s && $s->{endpoint} && $s->{clientHash},
        'web-push-testing: subscribed') or diag(explain $r);
    $s //= { keys => {} };
    my $dev = user_with_sub('wpt-a', $s);
    my $title = 'Héllo from herald';
    my $body = "Intact: 日本語 ✓ \"quotes\" \\ and more";
    my $d = wait_done(send_web('wpt-a', title => $title, body => $body,
        data => { k => 'v' }));
    is($d->{status}, 'delivered', 'web-push-testing: delivered (201)')
        or diag(explain [$d, $wpt->lines]);
    my $m = post_json("$wurl/get-notifications", { clientHash => $s->{clientHash} });
    my $msgs = $m && $m->{data} && $m->{data}{messages} || [];
    is(scalar @$msgs, 1, 'web-push-testing: one message received')
        or diag(explain $m);
    my $got = eval { Herald::Push::JSON()->decode(
        Encode::encode_utf8($msgs->[0] // '')) };
    is_deeply($got, { title => $title, body => $body, data => { k => 'v' } },
        'web-push-testing decrypted herald\'s message intact')
        or diag(explain $msgs);

    # the subscription expires in the mock: 410, the device goes
    post_json("$wurl/expire-subscription/$s->{clientHash}", {});
    $d = wait_done(send_web('wpt-a', body => 'after expiry'));
    is($d->{status}, 'failed', 'web-push-testing expired: failed');
    is($d->{reason}, 'invalid_token', 'web-push-testing expired: invalid_token');
    like($d->{last_error} // '', qr/^web push 410/, 'web-push-testing: 410');
    ok(!grep({ ($_->{id} // '') eq ($dev // '') } @{devices_of('wpt-a')}),
        'web-push-testing expired: the subscription is removed');
    my @log = $wpt->lines;
    ok(grep({ ($_->{path} // '') =~ m{^/notify/} && $_->{headers}{ttl}
              && $_->{headers}{urgency} } @log),
        'web-push-testing saw TTL and Urgency headers');
}

$t->stop;
done_testing();
