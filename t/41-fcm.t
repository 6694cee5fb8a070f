#!/usr/bin/perl

# FCM HTTP v1 provider (issue 4) against t/fake/fcm.c: TLS HTTP/2 with
# ALPN h2, the OAuth2 token endpoint checking the RS256 service-account
# assertion, the messages:send rules and google.rpc.Status error bodies.
# No real FCM here (no internet): the fake is the peer.
#
# Covered: config checks, the message (notification, string data,
# android priority/ttl/collapse_key), the access token fetched once and
# reused, UNREGISTERED and INVALID_ARGUMENT (token) removing the device,
# 503/500 retried then delivered, 429 QUOTA_EXCEEDED retried no sooner than
# a minute, 401 refreshing the access token, two projects with their own
# service accounts and connections, a service account the token endpoint
# refuses.

use strict;
use warnings;

use Test::More;
use Herald::Test;
use Herald::Push;

my $why = Herald::Push::have_tools();
plan(skip_all => $why) if $why;

my $t = Herald::Test->new;
my $dir = $t->dir;
my $pki = Herald::Push::make_pki($dir);

# the fake first: the service-account files name its token endpoint
my ($fake, $sa1, $sa2, $sa3);
{
    # keys before the fake knows them: generate, then start with --account
    my $tmp_uri = 'https://127.0.0.1:1/token';
    $sa1 = Herald::Push::make_service_account($dir, 'sa-one',
        project => 'herald-test', token_uri => $tmp_uri);
    $sa2 = Herald::Push::make_service_account($dir, 'sa-two',
        project => 'second-project', token_uri => $tmp_uri);
    $sa3 = Herald::Push::make_service_account($dir, 'sa-rogue',
        project => 'herald-test', token_uri => $tmp_uri);
    $fake = Herald::Push->start_fake('fcm', $dir,
        '--cert', $pki->{cert}, '--key', $pki->{key},
        '--project', 'herald-test',
        '--account', "$sa1->{pub}:$sa1->{email}:herald-test",
        '--account', "$sa2->{pub}:$sa2->{email}:second-project");
    my $uri = 'https://127.0.0.1:' . $fake->port . '/token';
    for my $sa ($sa1, $sa2, $sa3) {
        my $j = Herald::Push::JSON()->decode(
            do { local (@ARGV, $/) = ($sa->{json}); <> });
        $j->{token_uri} = $uri;
        open(my $fh, '>', $sa->{json}) or die $!;
        print $fh Herald::Push::JSON()->encode($j);
        close $fh;
    }
}

sub provider
{
    my ($name, $sa, %o) = @_;
    my $app = $o{app} ? "app $o{app};" : '';
    my $project = $o{project} ? "project_id $o{project};" : '';
    return <<"EOF";
provider $name {
    type fcm;
    service_account $sa->{json};
    $project
    url https://127.0.0.1:${\ $fake->port};
    $app
    ca_file $pki->{ca};
    connections $o{conns};
    timeout 3s;
}
EOF
}

my $providers = join('',
    provider('fcm_main', $sa1, conns => 2),
    provider('fcm_two', $sa2, conns => 1, app => 'two'),
    provider('fcm_rogue', $sa3, conns => 1, app => 'rogue'));
my $conf = $t->default_conf_text(workers => 2);
$conf =~ s/^channel push .*$/channel push { provider fcm_main fcm_two fcm_rogue; }/m
    or die "no push channel in the default conf";
$conf =~ s/^(provider sink \{)/$providers\n$1/m;
$t->write_conf($conf);

# ==== configuration checks ================================================

{
    my ($rc, $out) = $t->test_conf;
    is($rc, 0, 'herald -t accepts the fcm providers') or diag($out);

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
    $check->("provider f {\n type fcm;\n project_id p;\n}\n",
        qr/has no "service_account".* in \S+herald\.conf:\d+/,
        'no service_account');
    $check->("provider f {\n type fcm;\n service_account $pki->{ca};\n}\n",
        qr/service_account .* is not a JSON object .* in \S+herald\.conf:\d+/,
        'service_account not JSON');
    $check->("provider f {\n type fcm;\n service_account $sa1->{json};\n"
        . " url fcm.googleapis.com;\n}\n",
        qr/invalid value "fcm\.googleapis\.com" in "url".* in \S+herald\.conf:\d+/,
        'url without https://');
}

$t->run;

{
    $t->put_user('probe', {});
    my $r = $t->add_device('probe', { platform => 'android',
        token => 'probe-token' });
    if ($r->{status} != 201 && $r->{status} != 200) {
        done_testing();
        diag("POST /v1/users/{id}/devices answered $r->{status}: "
            . "the devices API (issue 3) is not there, end-to-end tests skipped");
        exit 0;
    }
}

# ==== helpers =============================================================

my %device_id;

sub user_with_device
{
    my ($uid, $token, %dev) = @_;
    $t->put_user($uid, {});
    my $r = $t->add_device($uid, { platform => 'android', token => $token,
        %dev });
    ok($r->{status} == 201 || $r->{status} == 200, "$uid: device registered")
        or diag(explain $r);
    $device_id{$uid} = $r->{json} && $r->{json}{device}{id};
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
sub received_for { my ($tok) = @_; grep { ($_->{token} // '') eq $tok } $fake->received }

# ==== a message ============================================================

{
    user_with_device('happy', 'tok-happy-1');
    my $nid = send_push('happy', data => { order => '42', kind => 'ship' },
        push => { collapse_id => 'order-42' }, priority => 'high',
        ttl => 3600);
    my $n = wait_done($nid);
    my $d = delivery($n);
    is($d->{status}, 'delivered', 'message: delivered') or diag(explain $n);
    is($d->{provider}, 'fcm_main', 'message: by fcm_main');
    my ($got) = received_for('tok-happy-1');
    ok($got, 'message: the fake accepted it')
        or BAIL_OUT('nothing reached the fake');
    my $m = $got->{message};
    is($got->{project}, 'herald-test', 'message: project from the account');
    is_deeply($m->{notification}, { title => 'Hello', body => 'World' },
        'message: notification');
    is_deeply($m->{data}, { order => '42', kind => 'ship' },
        'message: data (strings)');
    is($m->{android}{priority}, 'high', 'message: android.priority high');
    like($m->{android}{ttl} // '', qr/^3(5\d\d|600)s$/,
        'message: android.ttl in seconds');
    is($m->{android}{collapse_key}, 'order-42', 'message: collapse_key');
    is($got->{email}, $sa1->{email}, 'message: token of the first account');

    user_with_device('low', 'tok-low-1');
    is(delivery(wait_done(send_push('low', priority => 'low')))->{status},
        'delivered', 'low: delivered');
    ($got) = received_for('tok-low-1');
    is($got && $got->{message}{android}{priority}, 'normal',
        'low: android.priority normal');

    my @tokens = $fake->events('token');
    my %by_email;
    $by_email{$_->{email}}++ for @tokens;
    cmp_ok($by_email{$sa1->{email}} // 0, '<=', 2,
        'access token fetched at most once per worker');
    is($tokens[0] && $tokens[0]{kid}, 'kid-sa-one',
        'assertion carries the private_key_id as kid');
}

# ==== dead tokens ==========================================================

for my $case (['dead-1', 'dead', 'UNREGISTERED'],
              ['bogus-1', 'bogus', 'INVALID_ARGUMENT']) {
    my ($token, $uid, $code) = @$case;
    user_with_device($uid, $token);
    my $d = delivery(wait_done(send_push($uid)));
    is($d->{status}, 'failed', "$code: failed");
    like($d->{last_error} // '', qr/\Q$code\E/, "$code: recorded");
    my $devs = $t->http(GET => "/v1/users/$uid/devices");
    ok($devs->{status} == 200
        && !grep({ $_->{token} eq $token } @{$devs->{json}{devices} // []}),
        "$code: device removed") or diag(explain $devs->{json});
}

# ==== retried, then delivered ==============================================

for my $case (['flaky-1', 'flaky', 'UNAVAILABLE'],
              ['oops-1', 'oops', 'INTERNAL']) {
    my ($token, $uid, $code) = @$case;
    user_with_device($uid, $token);
    my $n = wait_done(send_push($uid), 20);
    my $d = delivery($n);
    is($d->{status}, 'delivered', "$code: delivered in the end")
        or diag(explain $n);
    is($d->{attempts}, 2, "$code: on the second attempt");
}

{
    user_with_device('quota', 'quota-1');
    my $nid = send_push('quota');
    my $n = $t->wait_notification($nid, sub {
        (delivery($_[0])->{status} // '') eq 'retrying' }, 10);
    my $d = delivery($n);
    is($d->{status}, 'retrying', 'QUOTA_EXCEEDED: retrying');
    like($d->{last_error} // '', qr/QUOTA_EXCEEDED/, 'QUOTA_EXCEEDED: recorded');
    my @tl = grep { $_->{event} eq 'retrying' } @{$d->{timeline} // []};
    ok(@tl, 'QUOTA_EXCEEDED: in the timeline');
}

{
    my $before = scalar $fake->events('token');
    user_with_device('expire', 'expire-1');
    my $d = delivery(wait_done(send_push('expire')));
    is($d->{status}, 'delivered', '401: delivered');
    is($d->{attempts}, 1, '401: within one attempt');
    cmp_ok(scalar $fake->events('token'), '>', $before,
        '401: a new access token was fetched');
}

# ==== a second project ====================================================

{
    user_with_device('two', 'tok-two-1', app => 'two');
    my $d = delivery(wait_done(send_push('two')));
    is($d->{status}, 'delivered', 'project two: delivered');
    is($d->{provider}, 'fcm_two', 'project two: by fcm_two');
    my ($got) = received_for('tok-two-1');
    is($got && $got->{project}, 'second-project', 'project two: its project');
    is($got && $got->{email}, $sa2->{email}, 'project two: its account');
    my %conns_main = map { $_->{conn} => 1 }
        grep { ($_->{email} // '') eq $sa1->{email} } $fake->received;
    ok($got && !$conns_main{$got->{conn}},
        'project two: its own connection');
}

# ==== an account the token endpoint refuses ================================

{
    user_with_device('rogue', 'tok-rogue-1', app => 'rogue');
    my $nid = send_push('rogue');
    my $n = $t->wait_notification($nid, sub {
        (delivery($_[0])->{last_error} // '') ne '' }, 10);
    my $d = delivery($n);
    like($d->{last_error} // '', qr/access token/,
        'refused assertion: waits for a token, retrying');
    isnt($d->{status}, 'delivered', 'refused assertion: not delivered');
    like($t->error_log, qr/FCM access token request failed with status 400.*invalid_grant/,
        'refused assertion: logged');
}

$t->stop;
unlike($t->error_log, qr/\[(?:alert|emerg|crit)\]/, 'no alert in the error log');

done_testing();
