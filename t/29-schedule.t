#!/usr/bin/perl

# Scheduling (issue 3): send_at holds deliveries ("scheduled") until due on
# the (test) clock; due order; ttl expiry; cancel with
# DELETE /v1/notifications/{id}.

use strict;
use warnings;

use Test::More;
use Herald::Test;

my $t = Herald::Test->new;
$t->default_conf(workers => 2);
$t->run(env => $t->clock_env);

my $U = 'sched-1';
my $r = $t->put_user($U, { email => 'sched@example.com',
    phone => '+15559876543' });
is($r->{status}, 201, 'user created') or diag(explain $r);

sub at { Herald::Test::rfc3339($t->herald_now + $_[0]) }

# Sends; returns (id, [delivery statuses]).
sub send_at
{
    my (%b) = @_;
    my $res = $t->send_note({ user_id => $U, channels => ['email'], %b });
    is($res->{status}, 202, "send ($b{body}): 202") or diag(explain $res);
    return ($res->{json} && $res->{json}{id} // "none-$b{body}",
            [$t->delivery_statuses($res->{json})]);
}

sub all_status
{
    my ($n, $s) = @_;
    my @st = $t->delivery_statuses($n);
    return @st && !grep { $_ ne $s } @st;
}

# ==== send_at in the future ================================================

{
    my $when = at(60);
    my ($id, $st) = send_at(body => 'later', send_at => $when,
        channels => ['email', 'sms']);
    is_deeply($st, ['scheduled', 'scheduled'],
        'send_at +60 s: deliveries scheduled');
    my $n = $t->notification($id);
    ok($n && all_status($n, 'scheduled'), 'GET: deliveries scheduled')
        or diag(explain $n);
    ok($n && defined $n->{send_at}, 'GET: send_at shown') or diag(explain $n);
    sleep 1;
    is(scalar $t->deliveries_for($id), 0, 'nothing sent before send_at');

    $t->clock_advance(30_000);
    sleep 0.5;
    is(scalar $t->deliveries_for($id), 0, 'nothing sent at +30 s');
    $n = $t->notification($id);
    ok($n && all_status($n, 'scheduled'), 'still scheduled at +30 s')
        or diag(explain $n);

    $t->clock_advance(31_000);
    my @l = $t->wait_deliveries($id, 2, 15);
    is(scalar @l, 2, 'past send_at: both deliveries sent');
    $n = $t->wait_notification($id, sub { all_status($_[0], 'delivered') });
    ok($n && all_status($n, 'delivered'), 'past send_at: GET delivered')
        or diag(explain $n);
    is($n && $n->{status}, 'delivered', 'past send_at: notification delivered');

    # send_at in the past: sent at once
    my ($pid, $pst) = send_at(body => 'past', send_at => at(-30));
    is_deeply($pst, ['queued'], 'send_at in the past: queued');
    is(scalar $t->wait_deliveries($pid, 1), 1, 'send_at in the past: sent');
}

# ==== due order ============================================================

{
    my %id;
    for my $s (30, 10, 20) {
        my ($id, $st) = send_at(body => "order $s", send_at => at($s));
        is_deeply($st, ['scheduled'], "order $s: scheduled");
        $id{$s} = $id;
    }
    sleep 0.5;
    $t->clock_advance(40_000);
    my @l;
    $t->wait_for(sub {
        @l = grep { ($_->{body} // '') =~ /^order / } $t->deliveries;
        @l >= 3;
    }, 15);
    is_deeply([map { $_->{body} } @l], ['order 10', 'order 20', 'order 30'],
        'deliveries.log order: 10, 20, 30') or diag(explain \@l);
}

# ==== ttl ==================================================================

{
    my ($exp, $st1) = send_at(body => 'ttl 5', send_at => at(10), ttl => 5);
    my ($keep, $st2) = send_at(body => 'ttl 3600', send_at => at(10),
        ttl => 3600);
    is_deeply([@$st1, @$st2], ['scheduled', 'scheduled'], 'ttl: scheduled');
    $t->clock_advance(60_000);
    is(scalar $t->wait_deliveries($keep, 1, 15), 1,
        'ttl 3600, 50 s late: delivered');
    my $n = $t->wait_notification($exp, sub { all_status($_[0], 'expired') });
    ok($n && all_status($n, 'expired'), 'ttl 5, 50 s late: expired')
        or diag(explain $n);
    sleep 0.5;
    is(scalar $t->deliveries_for($exp), 0, 'ttl 5: never sent');
}

# ==== cancel ===============================================================

{
    my ($id, $st) = send_at(body => 'to cancel', send_at => at(60),
        channels => ['email', 'sms']);
    my ($ctl) = send_at(body => 'control', send_at => at(60));

    $r = $t->http(DELETE => "/v1/notifications/$id");
    is($r->{status}, 200, 'cancel: 200') or diag(explain $r);
    is($r->{json} && $r->{json}{id}, $id, 'cancel: id');
    is($r->{json} && $r->{json}{cancelled}, 2, 'cancel: 2 deliveries');
    my $n = $t->notification($id);
    ok($n && all_status($n, 'cancelled'), 'cancel: deliveries cancelled')
        or diag(explain $n);
    is($n && $n->{status}, 'cancelled', 'cancel: notification cancelled');

    $r = $t->http(DELETE => "/v1/notifications/$id");
    is($r->{status}, 200, 'cancel again: 200') or diag(explain $r);
    is($r->{json} && $r->{json}{cancelled}, 0, 'cancel again: 0');

    $t->clock_advance(70_000);
    is(scalar $t->wait_deliveries($ctl, 1, 15), 1,
        'the control notification is sent');
    sleep 0.5;
    is(scalar $t->deliveries_for($id), 0, 'the cancelled one never is');
    $n = $t->notification($id);
    ok($n && all_status($n, 'cancelled'), 'still cancelled after send_at')
        or diag(explain $n);

    $r = $t->http(DELETE => "/v1/notifications/$ctl");
    is($r->{status}, 200, 'cancel a delivered notification: 200')
        or diag(explain $r);
    is($r->{json} && $r->{json}{cancelled}, 0,
        'cancel a delivered notification: cancelled 0');
    $n = $t->notification($ctl);
    ok($n && all_status($n, 'delivered'), 'it stays delivered')
        or diag(explain $n);

    $r = $t->http(DELETE => '/v1/notifications/n0000000000000000ff');
    $t->api_error($r, 404, 'not_found', undef, 'cancel an unknown id');
    $r = $t->http(DELETE => '/v1/notifications/garbage');
    $t->api_error($r, 404, 'not_found', undef, 'cancel a malformed id');
}

$t->stop;
ok(!$t->{stop_timed_out}, 'herald stopped on SIGTERM');
done_testing();
