#!/usr/bin/perl

# APNs provider (issue 4) against t/fake/apns.c: a TLS HTTP/2 server with
# ALPN h2 that checks the ES256 provider token, the request headers and
# the payload as APNs documents, and answers with APNs error bodies. No
# real APNs here (no internet): the fake is the peer.
#
# Covered: config checks (-t, "in FILE:LINE"), headers and payload of an
# alert, low priority and background pushes, apns-id stable per delivery,
# 410/400 removing the device, 429/500/503 retried then delivered, 403
# ExpiredProviderToken replayed, REFUSED_STREAM replayed, a request the
# fake never answers timing out into a retry, the stream limit starting at
# 1 then raised (never exceeded), two apps with their own keys and
# connections (one reached by name through c-ares), GOAWAY and a dropped
# connection mid-burst losing nothing, and certificate auth.

use strict;
use warnings;

use Test::More;
use Digest::SHA qw(sha256_hex);
use Herald::Test;
use Herald::Push;

my $why = Herald::Push::have_tools();
plan(skip_all => $why) if $why;

my $t = Herald::Test->new;
my $dir = $t->dir;
my $pki = Herald::Push::make_pki($dir);
my $k1 = Herald::Push::make_apns_key($dir, 'k1');
my $k2 = Herald::Push::make_apns_key($dir, 'k2');
my $client = Herald::Push::make_client_cert($dir, $pki, 'com.example.cert');

my @jwt = ('--jwt', "KEY0000001:TEAM000001:$k1->{pub}",
           '--jwt', "KEY0000002:TEAM000002:$k2->{pub}");
my @tls = ('--cert', $pki->{cert}, '--key', $pki->{key});
my @topics = map { ('--topic', $_) }
    qw(com.example.one com.example.two com.example.ga com.example.drop);

my $fake = Herald::Push->start_fake('apns', $dir, @tls, @jwt, @topics,
    '--initial-streams', 1, '--max-streams', 1000, '--latency-ms', 20);
my $fake_ga = Herald::Push->start_fake('apns', $dir, @tls, @jwt, @topics,
    '--initial-streams', 1, '--max-streams', 50, '--goaway-after', 7);
my $fake_drop = Herald::Push->start_fake('apns', $dir, @tls, @jwt, @topics,
    '--initial-streams', 1, '--max-streams', 50, '--drop-after', 9);
my $fake_cert = Herald::Push->start_fake('apns', $dir, @tls,
    '--client-ca', $pki->{ca}, '--topic', 'com.example.cert',
    '--initial-streams', 100);

sub provider
{
    my ($name, %o) = @_;
    my $auth = $o{cert}
        ? "certificate $client->{cert};\n    certificate_key $client->{key};"
        : "team_id $o{team};\n    key_id $o{kid};\n    key_file $o{key};";
    my $app = $o{app} ? "app $o{app};" : '';
    return <<"EOF";
provider $name {
    type apns;
    url https://$o{host}:$o{port};
    $auth
    bundle_id $o{topic};
    $app
    ca_file $pki->{ca};
    connections $o{conns};
    timeout 2s;
}
EOF
}

my $providers = join('',
    provider('apns_one', host => '127.0.0.1', port => $fake->port,
        team => 'TEAM000001', kid => 'KEY0000001', key => $k1->{p8},
        topic => 'com.example.one', conns => 2),
    provider('apns_two', host => 'localhost', port => $fake->port,
        team => 'TEAM000002', kid => 'KEY0000002', key => $k2->{p8},
        topic => 'com.example.two', conns => 1, app => 'two'),
    provider('apns_ga', host => '127.0.0.1', port => $fake_ga->port,
        team => 'TEAM000001', kid => 'KEY0000001', key => $k1->{p8},
        topic => 'com.example.ga', conns => 1, app => 'ga'),
    provider('apns_drop', host => '127.0.0.1', port => $fake_drop->port,
        team => 'TEAM000001', kid => 'KEY0000001', key => $k1->{p8},
        topic => 'com.example.drop', conns => 1, app => 'drop'));

my $conf = $t->default_conf_text(workers => 2);
$conf =~ s/^channel push .*$/channel push { provider apns_one apns_two apns_ga apns_drop; }/m
    or die "no push channel in the default conf";
$conf =~ s/^(provider sink \{)/$providers\n$1/m;
$t->write_conf($conf);

# ==== configuration checks ================================================

{
    my ($rc, $out) = $t->test_conf;
    is($rc, 0, 'herald -t accepts the apns providers') or diag($out);

    my $bad = Herald::Test->new;
    my $check = sub {
        my ($block, $re, $name, $at) = @_;
        my $c = $bad->default_conf_text;
        $c =~ s/^(provider sink \{)/$block\n$1/m;
        $bad->write_conf($c);
        my ($brc, $bout) = $bad->test_conf;
        isnt($brc, 0, "-t rejects: $name");
        like($bout, $re, "-t message: $name");
        if (defined $at) {
            # the line of the offending directive
            my @l = split /\n/, $c;
            my ($line) = grep { $l[$_ - 1] =~ /^\s*\Q$at\E\b/ } 1 .. @l;
            like($bout, qr/herald\.conf:$line\b/, "-t line: $name");
        }
    };
    $check->("provider a {\n type apns;\n bundle_id x;\n team_id T;\n}\n",
        qr/has no "key_id".* in \S+herald\.conf:\d+/, 'token auth incomplete');
    $check->("provider a {\n type apns;\n bundle_id x;\n url http://x;\n"
        . " certificate $client->{cert};\n}\n",
        qr/invalid value "http:\/\/x" in "url".* in \S+herald\.conf:\d+/,
        'url not https', 'url');
    $check->("provider a {\n type apns;\n bundle_id x;\n team_id T;\n"
        . " key_id K;\n key_file $pki->{ca};\n}\n",
        qr/key_file .* in \S+herald\.conf:\d+/, 'key_file not a key',
        'key_file');
    $check->("provider a {\n type apns;\n bundle_id x;\n key_file $k1->{p8};\n"
        . " team_id T;\n key_id K;\n connections 0;\n}\n",
        qr/"connections".* in \S+herald\.conf:\d+/, 'connections 0',
        'connections');
    $check->("provider a {\n type apns;\n bundle_id x;\n"
        . " certificate $client->{cert};\n colour blue;\n}\n",
        qr/unknown directive "colour" .* in \S+herald\.conf:\d+/,
        'unknown setting', 'colour');
    $check->("provider a {\n type apns;\n certificate $client->{cert};\n}\n",
        qr/has no "bundle_id"/, 'bundle_id required');
}

$t->run;

{
    my $probe = $t->put_user('probe', {});
    my $r = $t->add_device('probe', { platform => 'ios',
        token => Herald::Test::ios_token('probe') });
    if ($r->{status} != 201 && $r->{status} != 200) {
        done_testing();
        diag("POST /v1/users/{id}/devices answered $r->{status}: "
            . "the devices API (issue 3) is not there, end-to-end tests skipped");
        exit 0;
    }
}

# ==== helpers =============================================================

# A 64-hex token starting with PREFIX (the fake's script), unique by SEED.
sub tok
{
    my ($prefix, $seed) = @_;
    return $prefix . substr(sha256_hex("apns-$seed"), length $prefix);
}

my %device_id;

sub user_with_device
{
    my ($uid, $token, %dev) = @_;
    $t->put_user($uid, {});
    my $r = $t->add_device($uid, { platform => 'ios', token => $token, %dev });
    ok($r->{status} == 201 || $r->{status} == 200, "$uid: device registered")
        or diag(explain $r);
    $device_id{$uid} = $r->{json} && $r->{json}{device}{id};
    return $device_id{$uid};
}

sub send_push
{
    my ($uid, %body) = @_;
    my $r = $t->send_note({ user_id => $uid, channels => ['push'],
        title => 'Hello', body => 'World', %body });
    is($r->{status}, 202, "$uid: 202") or diag(explain $r);
    return $r->{json} && $r->{json}{id};
}

sub terminal { my $s = shift; $s eq 'delivered' || $s eq 'failed' }

sub wait_done
{
    my ($nid, $timeout) = @_;
    return $t->wait_notification($nid, sub {
        my @s = $t->delivery_statuses($_[0]);
        @s && !grep { !terminal($_) } @s;
    }, $timeout // 15);
}

sub delivery { $_[0] && $_[0]{deliveries} ? $_[0]{deliveries}[0] : {} }

sub received_for
{
    my ($f, $token) = @_;
    return grep { $_->{token} eq $token } $f->received;
}

# ==== an alert: headers and payload ========================================

{
    my $token = tok('a1', 'happy');
    user_with_device('happy', $token);
    my $before = time;
    my $nid = send_push('happy', data => { order => '42', n => '3' },
        push => { badge => 3, sound => 'default', thread_id => 'chat-1',
                  collapse_id => 'order-42' },
        priority => 'high', ttl => 3600);
    my $n = wait_done($nid);
    my $d = delivery($n);
    is($d->{status}, 'delivered', 'alert: delivered') or diag(explain $n);
    is($d->{attempts}, 1, 'alert: one attempt');
    is($d->{provider}, 'apns_one', 'alert: by apns_one');

    my ($got) = received_for($fake, $token);
    ok($got, 'alert: the fake accepted it') or BAIL_OUT('nothing reached the fake');
    my $h = $got->{headers};
    is($h->{'apns-topic'}, 'com.example.one', 'alert: apns-topic');
    is($h->{'apns-push-type'}, 'alert', 'alert: apns-push-type alert');
    is($h->{'apns-priority'}, '10', 'alert: apns-priority 10');
    is($h->{'apns-id'}, Herald::Push::apns_id($d->{id}),
        'alert: apns-id = UUIDv8 of the delivery id');
    like($h->{'apns-id'}, qr/^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab]/,
        'alert: apns-id is a version 8 UUID');
    is($h->{'apns-collapse-id'}, 'order-42', 'alert: apns-collapse-id');
    ok(defined $h->{'apns-expiration'}
        && abs($h->{'apns-expiration'} - ($before + 3600)) < 30,
        'alert: apns-expiration is now + ttl, in epoch seconds')
        or diag(explain $h);
    is($got->{kid}, 'KEY0000001', 'alert: token of key KEY0000001');
    is($h->{'authorization-kind'}, 'token', 'alert: token auth');
    is_deeply($got->{payload}, {
        aps => { alert => { title => 'Hello', body => 'World' }, badge => 3,
                 sound => 'default', 'thread-id' => 'chat-1' },
        order => '42', n => '3' }, 'alert: payload');
}

# ==== low priority, background ============================================

{
    my $token = tok('a2', 'low');
    user_with_device('low', $token);
    my $nid = send_push('low', priority => 'low');
    is(delivery(wait_done($nid))->{status}, 'delivered', 'low: delivered');
    my ($got) = received_for($fake, $token);
    is($got && $got->{headers}{'apns-priority'}, '5', 'low: apns-priority 5');

    $token = tok('a3', 'bg');
    user_with_device('bg', $token);
    my $r = $t->send_note({ user_id => 'bg', channels => ['push'],
        push => { data => { sync => 'inbox' } } });
    is($r->{status}, 202, 'background: 202') or diag(explain $r);
    is(delivery(wait_done($r->{json}{id}))->{status}, 'delivered',
        'background: delivered');
    ($got) = received_for($fake, $token);
    is($got && $got->{headers}{'apns-push-type'}, 'background',
        'background: apns-push-type background');
    is($got && $got->{headers}{'apns-priority'}, '5',
        'background: apns-priority 5');
    is_deeply($got && $got->{payload},
        { aps => { 'content-available' => 1 }, sync => 'inbox' },
        'background: content-available, no alert');
}

# ==== dead tokens ==========================================================

for my $case (['0410', 'unregistered', 'Unregistered'],
              ['0400', 'baddevicetoken', 'BadDeviceToken'],
              ['0401', 'notfortopic', 'DeviceTokenNotForTopic']) {
    my ($prefix, $uid, $reason) = @$case;
    my $token = tok($prefix, $uid);
    user_with_device($uid, $token);
    my $nid = send_push($uid);
    my $d = delivery(wait_done($nid));
    is($d->{status}, 'failed', "$reason: failed");
    like($d->{last_error} // '', qr/\Q$reason\E/, "$reason: reason recorded");
    is($d->{attempts}, 1, "$reason: not retried");
    my $devs = $t->http(GET => "/v1/users/$uid/devices");
    ok($devs->{status} == 200
        && !grep({ $_->{token} eq $token } @{$devs->{json}{devices} // []}),
        "$reason: device removed") or diag(explain $devs->{json});
}

# A 410 whose timestamp is older than the device's registration: the token
# was registered again since APNs saw it go, so the device stays.
{
    my $token = tok('0411', 'reregistered');
    user_with_device('reregistered', $token);
    my $d = delivery(wait_done(send_push('reregistered')));
    is($d->{status}, 'failed', 'old 410: failed');
    is($d->{reason}, 'rejected', 'old 410: not an invalid token');
    my $devs = $t->http(GET => '/v1/users/reregistered/devices');
    ok(grep({ $_->{token} eq $token } @{$devs->{json}{devices} // []}),
        'old 410: the device registered after it stays')
        or diag(explain $devs->{json});
}

# ==== retried, then delivered =============================================

for my $case (['0429', 'r429', 'TooManyRequests'],
              ['0500', 'r500', 'InternalServerError'],
              ['0503', 'r503', 'ServiceUnavailable']) {
    my ($prefix, $uid, $reason) = @$case;
    my $token = tok($prefix, $uid);
    user_with_device($uid, $token);
    my $nid = send_push($uid);
    my $n = wait_done($nid, 20);
    my $d = delivery($n);
    is($d->{status}, 'delivered', "$reason: delivered in the end")
        or diag(explain $n);
    is($d->{attempts}, 2, "$reason: on the second attempt");
    my @tl = map { $_->{event} } @{$d->{timeline} // []};
    ok(grep({ $_ eq 'retrying' } @tl), "$reason: went through retrying")
        or diag(explain $d->{timeline});
    my ($got) = received_for($fake, $token);
    is($got && $got->{attempt}, 2, "$reason: the fake saw two requests");
    is($got && $got->{headers}{'apns-id'}, Herald::Push::apns_id($d->{id}),
        "$reason: same apns-id on the retry");
}

# 403 ExpiredProviderToken and REFUSED_STREAM are replayed at once, inside
# one attempt of the dispatcher
for my $case (['0403', 'expired', 'ExpiredProviderToken'],
              ['0ef0', 'refused', 'REFUSED_STREAM']) {
    my ($prefix, $uid, $what) = @$case;
    my $token = tok($prefix, $uid);
    user_with_device($uid, $token);
    my $d = delivery(wait_done(send_push($uid)));
    is($d->{status}, 'delivered', "$what: delivered");
    is($d->{attempts}, 1, "$what: replayed within the first attempt");
    my ($got) = received_for($fake, $token);
    is($got && $got->{attempt}, 2, "$what: the fake saw it twice");
}

# ==== two apps: own keys, own connections ==================================

{
    my $token = tok('b2', 'app-two');
    user_with_device('apptwo', $token, app => 'two');
    my $d = delivery(wait_done(send_push('apptwo')));
    is($d->{status}, 'delivered', 'app two: delivered');
    is($d->{provider}, 'apns_two', 'app two: by apns_two');
    my ($got) = received_for($fake, $token);
    is($got && $got->{kid}, 'KEY0000002', 'app two: its own key');
    is($got && $got->{headers}{'apns-topic'}, 'com.example.two',
        'app two: its own topic');
    my %by_kid;
    for my $r ($fake->received) {
        $by_kid{$r->{conn}}{$r->{kid}} = 1;
    }
    ok(!grep({ keys(%$_) > 1 } values %by_kid),
        'no connection carried tokens of two keys')
        or diag(explain \%by_kid);
}

# ==== a burst: stream limit 1, then raised ================================

{
    my @nids;
    my %tokens;
    for my $i (1 .. 20) {
        my $token = tok('c', "burst-$i");
        $tokens{$token} = 1;
        user_with_device("burst$i", $token);
    }
    for my $round (1 .. 5) {
        for my $i (1 .. 20) {
            my $r = $t->send_note({ user_id => "burst$i", channels => ['push'],
                body => "round $round" });
            push @nids, $r->{json}{id} if $r->{status} == 202;
        }
    }
    is(scalar @nids, 100, 'burst: 100 accepted');
    my $all = $t->wait_for(sub {
        my @got = grep { $tokens{$_->{token}} } $fake->received;
        @got >= 100;
    }, 30);
    my @got = grep { $tokens{$_->{token}} } $fake->received;
    is(scalar @got, 100, 'burst: 100 reached the fake');
    is(scalar $fake->events('violation'), 0,
        'burst: the stream limit was never exceeded');
    my @over = grep { $_->{concurrent} > $_->{limit} } $fake->received;
    is(scalar @over, 0, 'burst: concurrency <= the limit in force');
    my ($max) = sort { $b <=> $a } map { $_->{concurrent} } @got;
    cmp_ok($max, '>', 1, "burst: streams multiplexed once the limit was raised (max $max)");
}

# ==== what herald's SETTINGS ask of the peer =============================
{
    my @st = map { $_->{settings} } $fake->events('settings');
    ok(scalar @st, 'settings: the fake saw herald\'s SETTINGS');
    my %s = map { %$_ } @st;
    # RFC 9113 6.5.2 ids: 1 header table, 2 push, 4 window, 9 RFC 7540
    # priorities off (RFC 9218)
    is($s{1}, 0, 'settings: no HPACK table for responses (each apns-id is new)');
    is($s{2}, 0, 'settings: server push off');
    cmp_ok($s{4} // 0, '>', 65535, 'settings: a stream window above the default');
    is($s{9}, 1, 'settings: no RFC 7540 priority tree');
}

# ==== GOAWAY and a dropped connection mid-burst: nothing lost ===========

for my $case (['ga', $fake_ga, 'goaway', 'GOAWAY every 7 streams'],
              ['drop', $fake_drop, 'drop', 'connection dropped every 9']) {
    my ($app, $f, $event, $name) = @$case;
    my %tokens;
    for my $i (1 .. 10) {
        my $token = tok('d', "$app-$i");
        $tokens{$token} = 1;
        user_with_device("$app$i", $token, app => $app);
    }
    my @nids;
    for my $round (1 .. 4) {
        for my $i (1 .. 10) {
            my $r = $t->send_note({ user_id => "$app$i", channels => ['push'],
                body => "r$round" });
            push @nids, $r->{json}{id} if $r->{status} == 202;
        }
    }
    is(scalar @nids, 40, "$name: 40 accepted");
    my ($ok, $bad) = (0, 0);
    for my $nid (@nids) {
        my $d = delivery(wait_done($nid, 30));
        if (($d->{status} // '') eq 'delivered') {
            $ok++;
        } elsif (!$bad++) {
            diag("$name: not delivered: ", explain($d));
        }
    }
    is($ok, 40, "$name: all 40 delivered");
    my %seen;
    $seen{"$_->{token} $_->{payload}{aps}{alert}{body}"}++ for $f->received;
    is(scalar keys %seen, 40, "$name: the fake has all 40");
    cmp_ok(scalar $f->events($event), '>=', 3, "$name: it happened")
        or diag(explain [$f->lines]);
    my @dups = grep { $seen{$_} > 1 } keys %seen;
    ok(!@dups, "$name: no duplicates") or diag(explain \@dups);
}

# ==== a request never answered times out into a retry ======================

{
    my $token = tok('0ff0', 'hang');
    user_with_device('hang', $token);
    my $nid = send_push('hang');
    my $n = $t->wait_notification($nid, sub {
        (delivery($_[0])->{last_error} // '') =~ /timed out/;
    }, 15);
    my $d = delivery($n);
    like($d->{last_error} // '', qr/APNs: request timed out/,
        'never answered: times out') or diag(explain $n);
    isnt($d->{status}, 'failed', 'never answered: retried, not failed');
    # let it settle in the retry queue (not in flight) before stopping
    $t->http(DELETE => "/v1/users/hang/devices/$device_id{hang}");
}

$t->stop;
unlike($t->error_log, qr/\[(?:alert|emerg|crit)\]/, 'no alert in the error log');

# ==== certificate auth (a second herald) ==================================

{
    my $c = Herald::Test->new;
    my $text = $c->default_conf_text(workers => 1);
    my $block = provider('apns_cert', host => '127.0.0.1',
        port => $fake_cert->port, cert => 1, topic => 'com.example.cert',
        conns => 1);
    $text =~ s/^channel push .*$/channel push { provider apns_cert; }/m;
    $text =~ s/^(provider sink \{)/$block\n$1/m;
    $c->write_conf($text);
    $c->run;
    my $token = tok('e1', 'cert');
    $c->put_user('certuser', {});
    $c->add_device('certuser', { platform => 'ios', token => $token });
    my $r = $c->send_note({ user_id => 'certuser', channels => ['push'],
        title => 'Cert', body => 'auth' });
    my $n = $c->wait_notification($r->{json}{id}, sub {
        my @s = $c->delivery_statuses($_[0]);
        @s && !grep { !terminal($_) } @s;
    }, 15);
    is(delivery($n)->{status}, 'delivered', 'certificate auth: delivered')
        or diag(explain $n);
    my ($got) = received_for($fake_cert, $token);
    is($got && $got->{headers}{'authorization-kind'}, 'certificate',
        'certificate auth: the fake saw the client certificate');
    $c->stop;
}

done_testing();
