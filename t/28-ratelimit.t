#!/usr/bin/perl

# Rate limits (issue 3): per-channel delivery limits (top level and inside
# a category block) make deliveries "throttled"; the bucket refills with
# (test clock) time; priority critical bypasses; a per-key ingest limit
# answers 429 rate_limited with Retry-After.

use strict;
use warnings;

use Test::More;
use Herald::Test;

my $t = Herald::Test->new;
$t->default_conf(workers => 2, extra => <<'EOF');
rate_limit email 3/h burst 3;
category alerts {
    rate_limit sms 2/h burst 2;
}
api_key limited {
    secret limited-secret;
    scopes send users read admin;
    rate_limit 5/s burst 5;
}
EOF
$t->run(env => $t->clock_env);

for my $u (qw(rl-1 rl-1b rl-2)) {
    my $r = $t->put_user($u, { email => "$u\@example.com",
        phone => '+1555000' . sprintf('%04d', length($u) * 7 + ord(substr $u, -1)) });
    is($r->{status}, 201, "user $u created") or diag(explain $r);
}

# Sends one notification; returns (id, status of its single delivery).
sub send1
{
    my (%b) = @_;
    my $r = $t->send_note({ body => 'rl', %b });
    if ($r->{status} != 202) {
        diag(explain $r);
        return ('none', "HTTP $r->{status}");
    }
    my $d = $r->{json}{deliveries} // [];
    return ($r->{json}{id}, @$d == 1 ? $d->[0]{status} : 'deliveries: '
        . scalar @$d);
}

# ==== rate_limit email 3/h burst 3 =========================================

{
    my @st;
    my @ids;
    for my $i (1 .. 3) {
        my ($id, $s) = send1(user_id => 'rl-1', channels => ['email'],
            body => "email $i");
        push @ids, $id;
        is($s, 'queued', "email $i of 3: queued");
    }
    my ($over, $s) = send1(user_id => 'rl-1', channels => ['email'],
        body => 'email 4');
    is($s, 'throttled', 'email 4: throttled');
    my $n = $t->notification($over);
    my ($d) = @{$n && $n->{deliveries} || []};
    is($d && $d->{status}, 'throttled', 'email 4: GET status throttled')
        or diag(explain $n);
    is($d && $d->{reason}, 'rate_limited', 'email 4: reason rate_limited');

    for my $id (@ids) {
        my @l = $t->wait_deliveries($id, 1);
        is(scalar @l, 1, "$id delivered");
    }
    sleep 0.5;
    is(scalar $t->deliveries_for($over), 0, 'email 4: not sent');

    # other channels and other users have their own buckets
    my ($sid, $ss) = send1(user_id => 'rl-1', channels => ['sms'],
        body => 'sms while email is exhausted');
    is($ss, 'queued', 'sms of the same user: not limited');
    my ($oid, $os) = send1(user_id => 'rl-1b', channels => ['email'],
        body => 'email of another user');
    is($os, 'queued', 'email of another user: not limited');

    # critical bypasses
    my ($cid, $cs) = send1(user_id => 'rl-1', channels => ['email'],
        priority => 'critical', body => 'critical');
    is($cs, 'queued', 'critical while exhausted: queued');
    is(scalar $t->wait_deliveries($cid, 1), 1, 'critical: delivered');
    (undef, $s) = send1(user_id => 'rl-1', channels => ['email'],
        priority => 'high', body => 'high');
    is($s, 'throttled', 'high priority does not bypass');

    # 20 minutes refill one token (3/h)
    $t->clock_advance(20 * 60 * 1000 + 2000);
    my ($rid, $rs) = send1(user_id => 'rl-1', channels => ['email'],
        body => 'after 20 min');
    is($rs, 'queued', 'after 20 minutes: one more allowed');
    is(scalar $t->wait_deliveries($rid, 1), 1, 'after 20 minutes: delivered');
    (undef, $s) = send1(user_id => 'rl-1', channels => ['email'],
        body => 'after 20 min, second');
    is($s, 'throttled', 'after 20 minutes: only one');

    # a whole hour refills the burst, not more
    $t->clock_advance(2 * 3600 * 1000);
    my @after = map { (send1(user_id => 'rl-1', channels => ['email'],
        body => "refilled $_"))[1] } 1 .. 4;
    is_deeply(\@after, [qw(queued queued queued throttled)],
        'after 2 hours: the burst of 3 again, then throttled');
}

# ==== per-category limit ===================================================

{
    my @s = map { (send1(user_id => 'rl-2', channels => ['sms'],
        category => 'alerts', body => "alert $_"))[1] } 1 .. 3;
    is_deeply(\@s, [qw(queued queued throttled)],
        'category alerts, sms 2/h burst 2: third throttled');
    my (undef, $s) = send1(user_id => 'rl-2', channels => ['sms'],
        body => 'sms without category');
    is($s, 'queued', 'sms outside the category: not limited');
    (undef, $s) = send1(user_id => 'rl-2', channels => ['sms'],
        category => 'other', body => 'sms of another category');
    is($s, 'queued', 'sms of another category: not limited');
    (undef, $s) = send1(user_id => 'rl-2', channels => ['email'],
        category => 'alerts', body => 'alert by email');
    is($s, 'queued', 'email in category alerts: not limited by the sms rule');
    (undef, $s) = send1(user_id => 'rl-2', channels => ['sms'],
        category => 'alerts', priority => 'critical', body => 'alert crit');
    is($s, 'queued', 'critical alert: bypasses the category limit');
    sleep 0.5;
    ok(!grep({ ($_->{body} // '') eq 'alert 3' } $t->deliveries),
        'the throttled alert was not sent');
}

# ==== per-key ingest limit =================================================

{
    my $body = { user_id => 'rl-1b', channels => ['sms'], body => 'ingest' };
    my @c = map { $t->conn } 1 .. 10;
    my $req = $t->request_bytes(POST => '/v1/notifications', body => $body,
        close => 1, auth => 'limited:limited-secret');
    $_->write($req) for @c;
    my @r = map { my $x = eval { $_->read_response } // { status => 0,
        error => $@ }; $_->close; $x } @c;
    my @ok = grep { $_->{status} == 202 } @r;
    my @lim = grep { $_->{status} == 429 } @r;
    is(@ok + @lim, 10, 'burst of 10: every answer is 202 or 429')
        or diag(explain [map { $_->{status} } @r]);
    ok(@lim >= 1, 'burst of 10: some 429') or diag(explain \@r);
    ok(@ok >= 5 && @ok <= 6, 'burst of 10: 5 accepted (burst 5; 6 if slow)')
        or diag(scalar(@ok) . ' accepted');
    my $l = $lim[0] // { headers => {}, json => {} };
    $t->api_error($l, 429, 'rate_limited', undef, 'ingest limit');
    like($l->{headers}{'retry-after'} // '', qr/^[1-9]\d*$/,
        'ingest limit: Retry-After in whole seconds')
        or diag(explain $l->{headers});

    my $r = $t->send_note($body);
    is($r->{status}, 202, 'the demo key is not limited by key limited')
        or diag(explain $r);
    $t->clock_advance(2000);
    $r = $t->send_note($body, auth => 'limited:limited-secret');
    is($r->{status}, 202, 'key limited after 2 s: 202 again')
        or diag(explain $r);
    $r = $t->http(GET => '/v1/users/rl-1b', auth => 'limited:limited-secret');
    is($r->{status}, 200, 'key limited can read') or diag(explain $r);
}

$t->stop;
ok(!$t->{stop_timed_out}, 'herald stopped on SIGTERM');
done_testing();
