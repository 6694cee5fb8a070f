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

# a stopping herald is not ready
kill 'QUIT', $t->pid;
$t->wait_exit(10);
ok(!$t->running, 'graceful stop on SIGQUIT');
is($t->exit_status, 0, 'exit 0') if defined $t->exit_status;
$t->check_sanitizer;
done_testing;
