#!/usr/bin/perl
# Monitoring: /healthz, /readyz and /metrics in the Prometheus text format,
# with figures that follow what herald did.

use strict;
use warnings;
use Test::More;
use lib 't/lib';
use Herald::Test;

Herald::Test->require_binary;

my $t = Herald::Test->new;
$t->default_conf(workers => 2);
$t->run;

is($t->http(GET => '/healthz', auth => undef)->{status}, 200,
    'healthz needs no auth');
my $r = $t->http(GET => '/readyz', auth => undef);
is($r->{status}, 200, 'readyz: ready');
is($r->{json}{status}, 'ready', 'readyz body');
is($r->{json}{workers}, 2, 'readyz: 2 workers');

is($t->http(GET => '/metrics', auth => undef)->{status}, 401,
    'metrics need a key');

$t->http(PUT => '/v1/users/m1', body => { email => 'm1@example.com',
    phone => '+15550002222' });
$t->http(PUT => '/v1/users/m1/preferences',
    body => { channels => { sms => JSON::PP::false() } });
for (1 .. 3) {
    is($t->http(POST => '/v1/notifications',
        body => { user_id => 'm1', body => "m $_" })->{status}, 202,
        "send $_");
}
ok($t->wait_for(sub { @{ $t->deliveries } == 3 }, 10), "three emails delivered");

my $m = $t->http(GET => '/metrics');
is($m->{status}, 200, 'GET /metrics');
like($m->{headers}{'content-type'}, qr{^text/plain; version=0\.0\.4},
    'Prometheus content type');
my %v;
for my $line (split /\n/, $m->{body}) {
    next if $line =~ /^#/;
    like($line, qr/^[a-z_]+(\{[^}]*\})? -?[0-9.e+]+$/, "well-formed: $line")
        or last;
    my ($k, $val) = $line =~ /^(\S+) (\S+)$/;
    $v{$k} = $val;
}
is($v{herald_notifications_accepted_total}, 3, 'accepted counter');
is($v{'herald_deliveries_created_total{channel="email"}'}, 3,
    'deliveries created on email');
is($v{'herald_deliveries_suppressed_total{channel="sms"}'}, 3,
    'sms opted out: suppressed counted');
ok($t->wait_for(sub {
    my $b = $t->http(GET => '/metrics')->{body};
    $b =~ /herald_deliveries_total\{provider="sink",channel="email",outcome="delivered"\} 3/;
}, 5), 'provider outcomes counted');
ok($v{'herald_http_requests_total{code="2xx"}'} >= 5, '2xx counted');
ok(exists $v{'herald_http_request_duration_seconds_bucket{le="+Inf"}'},
    'ingest latency histogram');
ok(exists $v{'herald_delivery_seconds_count{channel="email"}'},
    'end-to-end latency histogram');
ok($v{'herald_store_commits_total{shard="0"}'}
    + $v{'herald_store_commits_total{shard="1"}'} > 0, 'group commits');
ok(exists $v{'herald_queue_depth{channel="push"}'}, 'queue depth gauge');
ok(exists $v{'herald_circuit_breaker_state{provider="sink",worker="0"}'},
    'circuit breaker gauge');
ok(exists $v{'herald_store_used_bytes{shard="0"}'}, 'map use gauge');
# the heap as glibc's malloc sees it (mallinfo2); a sanitizer build has
# its own allocator, which glibc's figures do not see
ok(exists $v{'herald_heap_bytes{state="in_use"}'}
    && exists $v{'herald_heap_bytes{state="free"}'}, 'heap gauges');
SKIP: {
    my (undef, $build) = $t->exec_herald('-V');
    skip 'a sanitizer build: malloc is not glibc\'s', 1
        if $build =~ /-fsanitize/;
    # a worker's event base, the stores' cursors, the record cache: more
    # than 256 KiB in use, less than the 1 GiB no idle herald needs
    ok($v{'herald_heap_bytes{state="in_use"}'} > 256 * 1024
        && $v{'herald_heap_bytes{state="in_use"}'} < 1024 * 1024 * 1024,
        "heap in use: $v{'herald_heap_bytes{state=\"in_use\"}'} bytes");
}

# a stopping herald is not ready
kill 'QUIT', $t->pid;
$t->wait_exit(10);
ok(!$t->running, 'graceful stop on SIGQUIT');
is($t->exit_status, 0, 'exit 0') if defined $t->exit_status;
$t->check_sanitizer;

# ==== per-provider connections, streams and tokens (herald_provider_*) ====
#
# Against the fake APNs and FCM (t/fake/*.js): after sends, each worker
# that sent holds one connection per pool, the streams go back to 0 when
# idle, the APNs token is signed once (one cache for all workers) and the
# FCM token counter matches the fake token endpoint's hits; once the fakes
# are gone the connections drop to 0 and new attempts count as errors.
SKIP: {
    require Herald::Push;
    my $why = Herald::Push::have_tools();
    skip($why, 1) if $why;
    providers_part();
}

done_testing;

sub scrape
{
    my ($h) = @_;
    my %m;
    for my $line (split /\n/, $h->http(GET => '/metrics')->{body} // '') {
        next if $line =~ /^#/;
        my ($k, $val) = $line =~ /^(\S+) (\S+)$/ or next;
        $m{$k} = $val;
    }
    return \%m;
}

sub pm
{
    my ($m, $name, $prov, $result) = @_;
    my $k = "herald_provider_$name\{provider=\"$prov\""
        . (defined $result ? ",result=\"$result\"" : '') . '}';
    return $m->{$k};
}

sub providers_part
{
    my $h = Herald::Test->new;
    my $dir = $h->dir;
    my $pki = Herald::Push::make_pki($dir);
    my $key = Herald::Push::make_apns_key($dir, 'mk');
    my $sa = Herald::Push::make_service_account($dir, 'sa-m',
        project => 'herald-test', token_uri => 'https://127.0.0.1:1/token');
    my @tls = ('--cert', $pki->{cert}, '--key', $pki->{key});
    my $apns = Herald::Push->start_fake('apns', $dir, @tls,
        '--jwt', "KEYMETRIC1:TEAMMETRIC:$key->{pub}",
        '--topic', 'com.example.metrics', '--initial-streams', 10,
        '--max-streams', 100);
    my $fcm = Herald::Push->start_fake('fcm', $dir, @tls,
        '--project', 'herald-test',
        '--account', "$sa->{pub}:$sa->{email}:herald-test");
    {
        my $j = Herald::Push::JSON()->decode(
            do { local (@ARGV, $/) = ($sa->{json}); <> });
        $j->{token_uri} = 'https://127.0.0.1:' . $fcm->port . '/token';
        open(my $fh, '>', $sa->{json}) or die $!;
        print $fh Herald::Push::JSON()->encode($j);
        close $fh;
    }
    my $providers = <<"EOF";
provider apns_m {
    type apns;
    url https://127.0.0.1:${\ $apns->port};
    team_id TEAMMETRIC;
    key_id KEYMETRIC1;
    key_file $key->{p8};
    bundle_id com.example.metrics;
    ca_file $pki->{ca};
    connections 1;
    timeout 2s;
    retry attempts 2 base 100ms;
}
provider fcm_m {
    type fcm;
    service_account $sa->{json};
    url https://127.0.0.1:${\ $fcm->port};
    ca_file $pki->{ca};
    connections 1;
    timeout 2s;
    retry attempts 2 base 100ms;
}
EOF
    my $conf = $h->default_conf_text(workers => 2);
    $conf =~ s/^channel push .*$/channel push { provider apns_m fcm_m; }/m
        or die "no push channel in the default conf";
    $conf =~ s/^(provider sink \{)/$providers\n$1/m;
    $h->write_conf($conf);
    $h->run;

    my $m = scrape($h);
    is(pm($m, 'connections', 'apns_m'), 0, 'provider: no connection yet');
    is(pm($m, 'token_refreshes_total', 'fcm_m', 'ok'), 0,
        'provider: no token yet');
    is(pm($m, 'connections', 'sink'), 0, 'provider: the log sink too');

    # users spread over both workers' shards
    my @nids;
    for my $i (1 .. 8) {
        $h->put_user("pm$i", {});
        $h->add_device("pm$i", { platform => 'ios',
            token => sprintf('%064x', $i) });
        $h->add_device("pm$i", { platform => 'android',
            token => "fcm-tok-$i" });
        my $r = $h->send_note({ user_id => "pm$i", channels => ['push'],
            title => 'Hi', body => "metrics $i" });
        is($r->{status}, 202, "provider: send $i");
        push @nids, $r->{json}{id};
    }
    my $done = sub {
        for my $nid (@nids) {
            my @s = $h->delivery_statuses($h->notification($nid));
            return 0 if @s != 2 || grep { $_ ne 'delivered' } @s;
        }
        return 1;
    };
    ok($h->wait_for($done, 20), 'provider: 16 pushes delivered');

    my @apns_conns = $apns->events('connect');
    my %fcm_conns = map { ($_->{conn} // '') => 1 } $fcm->received;
    my @tokens = $fcm->events('token');
    ok(@apns_conns >= 1 && @apns_conns <= 2,
        'provider: 1 or 2 workers sent to APNs');
    ok($h->wait_for(sub {
        $m = scrape($h);
        pm($m, 'streams', 'apns_m') == 0 && pm($m, 'streams', 'fcm_m') == 0
    }, 5), 'provider: streams back to 0 when idle');
    is(pm($m, 'connections', 'apns_m'), scalar @apns_conns,
        'provider: APNs connections = 1 per worker that sent');
    is(pm($m, 'connects_total', 'apns_m', 'ok'), scalar @apns_conns,
        'provider: APNs connects ok');
    is(pm($m, 'connects_total', 'apns_m', 'error'), 0,
        'provider: no APNs connect error');
    is(pm($m, 'stream_limit', 'apns_m'), 100 * @apns_conns,
        'provider: APNs stream limit = peer SETTINGS summed');
    is(pm($m, 'token_refreshes_total', 'apns_m', 'ok'), 1,
        'provider: one APNs JWT signed (shared by the workers)');
    is(pm($m, 'token_refreshes_total', 'apns_m', 'error'), 0,
        'provider: no APNs JWT error');
    ok(@tokens >= 1, 'provider: the FCM token endpoint was hit');
    is(pm($m, 'token_refreshes_total', 'fcm_m', 'ok'), scalar @tokens,
        'provider: FCM token fetches = token endpoint hits');
    is(pm($m, 'token_refreshes_total', 'fcm_m', 'error'), 0,
        'provider: no FCM token error');
    # per worker that sent: the messages pool and the token pool
    is(pm($m, 'connections', 'fcm_m'), keys(%fcm_conns) + @tokens,
        'provider: FCM connections = messages + token pools of the senders');
    is(pm($m, 'goaways_total', 'apns_m'), 0, 'provider: no GOAWAY');

    # the fakes go away: every connection is closed, new attempts fail
    $apns->stop;
    $fcm->stop;
    ok($h->wait_for(sub {
        $m = scrape($h);
        pm($m, 'connections', 'apns_m') == 0
            && pm($m, 'connections', 'fcm_m') == 0
    }, 10), 'provider: connections drop to 0 when the peers are gone')
        or diag(explain { map { $_ => $m->{$_} } grep { /provider_/ } keys %$m });
    is(pm($m, 'stream_limit', 'apns_m'), 0, 'provider: no stream limit left');
    $h->put_user('pm-late', {});
    $h->add_device('pm-late', { platform => 'ios', token => 'ab' x 32 });
    $h->send_note({ user_id => 'pm-late', channels => ['push'],
        title => 'Hi', body => 'late' });
    ok($h->wait_for(sub {
        pm(scrape($h), 'connects_total', 'apns_m', 'error') > 0
    }, 10), 'provider: a refused connect counts as an error');
    is(pm(scrape($h), 'connections', 'apns_m'), 0,
        'provider: still no connection');

    kill 'QUIT', $h->pid;
    $h->wait_exit(10);
    ok(!$h->running, 'provider: graceful stop');
    $h->check_sanitizer;
}
