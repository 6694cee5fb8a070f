#!/usr/bin/perl
# Retries, failover, circuit breakers and dead letters, driven by a real
# failing sink: a log provider writing to /dev/full gets ENOSPC on every
# write, a transient failure as far as herald can tell.

use strict;
use warnings;
use Test::More;
use lib 't/lib';
use Herald::Test;

Herald::Test->require_binary;
plan skip_all => '/dev/full is not available' unless -c '/dev/full';

my $t = Herald::Test->new;
$t->default_conf(
    workers  => 1,
    channels => { email => 'full sink', sms => 'full' },
    extra    => <<'CONF');
provider full {
    type log;
    path /dev/full;
    retry attempts 3 base 50ms max 100ms;
    circuit_breaker failures 4 cooldown 500ms;
}
CONF
$t->run;

sub notif { $t->http(GET => "/v1/notifications/$_[0]")->{json} }
sub dead_letters {
    my ($q) = @_;
    my $r = $t->http(GET => '/v1/dead-letters' . ($q // ''));
    return $r->{json} ? @{ $r->{json}{dead_letters} } : ();
}

my $r = $t->http(PUT => '/v1/users/rt1',
    body => { email => 'rt1@example.com', phone => '+15550001111' });
is($r->{status}, 201, 'user created');

# ==== failover: email goes to "full" first, then at once to "sink" ====

$r = $t->http(POST => '/v1/notifications',
    body => { user_id => 'rt1', channels => ['email'], body => 'failover' });
is($r->{status}, 202, 'email send accepted');
my $email_id = $r->{json}{id};
ok($t->wait_for(sub {
    my $n = notif($email_id);
    $n && $n->{deliveries}[0]{status} eq 'delivered';
}, 10), 'email delivered after failover');
my $d = notif($email_id)->{deliveries}[0];
is($d->{provider}, 'sink', 'the second provider delivered it');
is($d->{attempts}, 2, 'two attempts: full, then sink');
like($d->{last_error} // '', qr/write failed/, 'the first error is kept');
my @events = map { $_->{event} } @{ $d->{timeline} };
is_deeply(\@events, [qw(accepted retrying delivered)], 'timeline')
    or diag explain $d->{timeline};

# ==== retries run out: sms has only "full" ====

$r = $t->http(POST => '/v1/notifications',
    body => { user_id => 'rt1', channels => ['sms'], body => 'doomed' });
is($r->{status}, 202, 'sms send accepted');
my $sms_id = $r->{json}{id};
my $sms_did = $r->{json}{deliveries}[0]{id};
ok($t->wait_for(sub {
    my $n = notif($sms_id);
    $n && $n->{deliveries}[0]{status} eq 'failed';
}, 10), 'sms failed once its attempts ran out');
$d = notif($sms_id)->{deliveries}[0];
is($d->{attempts}, 3, '3 attempts, as configured');
is($d->{reason}, 'attempts_exhausted', 'reason attempts_exhausted');
is(scalar(grep { $_->{event} eq 'retrying' } @{ $d->{timeline} }), 2,
    'two retries on the timeline');

like($t->http(GET => '/metrics')->{body},
    qr/herald_deliveries_failed_total\{channel="sms",reason="attempts_exhausted"\} [1-9]/,
    'metrics: failed by reason');

my @dl = dead_letters('?channel=sms');
is(scalar @dl, 1, 'one sms dead letter');
is($dl[0]{id}, $sms_did, 'it is the sms delivery');
is($dl[0]{reason}, 'attempts_exhausted', 'with its reason');
like($dl[0]{last_error} // '', qr/write failed/, 'and its last error');
is(scalar(dead_letters('?channel=email')), 0, 'no email dead letter');
is($t->http(GET => '/v1/dead-letters?channel=fax')->{status}, 400,
    'unknown channel: 400');
is($t->http(GET => '/v1/dead-letters', auth => 'ro:ro-secret')->{status},
    403, 'dead letters need the admin scope');

# ==== circuit breaker: 1 + 3 consecutive failures of "full" open it ====

ok($t->wait_for(sub {
    $t->error_log =~ /circuit breaker of provider "full" closed -> open/
}, 10), 'the breaker opened, logged at error level')
    or diag $t->error_log;
my $q = $t->http(GET => '/v1/queues');
is($q->{status}, 200, 'GET /v1/queues');
ok(exists $q->{json}{channels}{$_}, "queues: channel $_")
    for qw(push sms email web);
ok($q->{json}{dead_letters} >= 1, 'queues: dead letter count');
is($q->{json}{providers}{sink}{circuit_breaker}, 'closed',
    'queues: the breaker of "sink" is closed');
ok(exists $q->{json}{providers}{full}{circuit_breaker},
    'queues: the breaker of "full" is shown');

# ==== retry a dead letter: it is queued again and fails again ====

$r = $t->http(POST => "/v1/dead-letters/$sms_did/retry");
is($r->{status}, 200, 'retry one dead letter');
ok($t->wait_for(sub {
    my $n = notif($sms_id);
    grep { $_->{event} eq 'requeued' } @{ $n->{deliveries}[0]{timeline} };
}, 5), 'the timeline shows the requeue');
ok($t->wait_for(sub {
    my $n = notif($sms_id);
    $n->{deliveries}[0]{status} eq 'failed' && dead_letters() == 1;
}, 20), 'after three more attempts it is a dead letter again');
ok($t->wait_for(sub {
    $t->error_log =~ /"full" (open -> half-open|half-open -> open)/
}, 10), 'the breaker probed after its cool-down');

# ==== bulk retry and delete ====

$r = $t->http(POST => '/v1/dead-letters/retry?channel=sms');
is($r->{status}, 200, 'bulk retry');
is($r->{json}{retried}, 1, 'one retried');
ok($t->wait_for(sub {
    notif($sms_id)->{deliveries}[0]{status} eq 'failed' && dead_letters() == 1;
}, 20), 'dead again');
$r = $t->http(DELETE => "/v1/dead-letters/$sms_did");
is($r->{status}, 200, 'delete the dead letter');
is($t->http(DELETE => "/v1/dead-letters/$sms_did")->{status}, 404,
    'delete again: 404');
is($t->http(POST => "/v1/dead-letters/$sms_did/retry")->{status}, 404,
    'retry a deleted letter: 404');
is(scalar(dead_letters()), 0, 'no dead letters left');

# the email that failed over reached the sink exactly once
is(scalar(grep { ($_->{notification_id} // '') eq $email_id } $t->deliveries),
    1, 'the failed-over email reached the sink once');

$t->stop;
done_testing;
