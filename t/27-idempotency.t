#!/usr/bin/perl

# Idempotency (issue 3): the Idempotency-Key header and the
# idempotency_key field; scope (api key, user); racing requests with one
# key make one notification; the key expires after idempotency_ttl.

use strict;
use warnings;

use Test::More;
use Herald::Test;

my $t = Herald::Test->new;
$t->default_conf(workers => 2, extra => <<'EOF');
idempotency_ttl 1h;
api_key other {
    secret other-secret;
    scopes send read;
}
EOF
$t->run;

for my $u (qw(idem-1 idem-2 idem-race)) {
    my $r = $t->put_user($u, { email => "$u\@example.com" });
    is($r->{status}, 201, "user $u created") or diag(explain $r);
}

sub send_key
{
    my ($body, $key, %o) = @_;
    return $t->send_note($body, %o,
        defined $key ? (headers => { 'Idempotency-Key' => $key }) : ());
}

sub is_dup
{
    my ($r, $id, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    is($r->{status}, 200, "$name: 200") or diag(explain $r);
    my $j = $r->{json} // {};
    ok(JSON::PP::is_bool($j->{duplicate}) && $j->{duplicate},
        "$name: \"duplicate\": true") or diag(explain $j);
    is($j->{id}, $id, "$name: the original id");
}

sub is_new
{
    my ($r, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    is($r->{status}, 202, "$name: 202") or diag(explain $r);
    my $j = $r->{json} // {};
    ok(JSON::PP::is_bool($j->{duplicate}) && !$j->{duplicate},
        "$name: \"duplicate\": false") or diag(explain $j);
    return $j->{id} // "none-$name";
}

# ==== header ===============================================================

{
    my $body = { user_id => 'idem-1', channels => ['email'], body => 'h1' };
    my $r1 = send_key($body, 'key-header-1');
    my $id = is_new($r1, 'header key, first');
    my $r2 = send_key($body, 'key-header-1');
    is_dup($r2, $id, 'header key, second');
    is_deeply($r2->{json} && $r2->{json}{deliveries},
        $r1->{json} && $r1->{json}{deliveries},
        'duplicate: the original deliveries');
    is($r2->{json} && $r2->{json}{user_id}, 'idem-1', 'duplicate: user_id');
    my $r3 = send_key({ user_id => 'idem-1', channels => ['email'],
        body => 'h1 changed' }, 'key-header-1');
    is_dup($r3, $id, 'header key, third with another body');

    my @l = $t->wait_deliveries($id, 1);
    sleep 0.5;
    @l = $t->deliveries_for($id);
    is(scalar @l, 1, 'header key: one line in deliveries.log');
    ok(!grep({ ($_->{body} // '') eq 'h1 changed' } $t->deliveries),
        'header key: the changed body was never sent');
    ok(!grep({ ($_->{user_id} // '') eq 'idem-1'
               && ($_->{notification_id} // '') ne $id } $t->deliveries),
        'header key: no other notification for the user');

    my $n = $t->notification($id);
    ok($n, 'the notification exists');
    my $r = $t->http(GET => '/v1/users/idem-1/notifications');
    is(scalar @{$r->{json} && $r->{json}{notifications} || []}, 1,
        'the user lists one notification') or diag(explain $r);
}

# ==== body field ===========================================================

{
    my $body = { user_id => 'idem-1', channels => ['email'], body => 'f1',
                 idempotency_key => 'key-field-1' };
    my $id = is_new($t->send_note($body), 'field key, first');
    is_dup($t->send_note($body), $id, 'field key, second');
    is_dup($t->send_note({ %$body, body => 'f1 changed' }), $id,
        'field key, third with another body');
    # the header and the field are one key space
    is_dup(send_key({ user_id => 'idem-1', channels => ['email'],
        body => 'f1 via header' }, 'key-field-1'), $id,
        'the same key as a header');
    my @l = $t->wait_deliveries($id, 1);
    sleep 0.5;
    is(scalar $t->deliveries_for($id), 1, 'field key: one line');
    ok(!grep({ ($_->{body} // '') =~ /^f1 / } $t->deliveries),
        'field key: the other bodies were never sent');
}

# ==== scope: (api key, user) ===============================================

{
    my $body = { user_id => 'idem-1', channels => ['email'], body => 's1' };
    my $a = is_new(send_key($body, 'key-scope'), 'scope: demo, idem-1');
    my $b = is_new(send_key($body, 'key-scope', auth => 'other:other-secret'),
        'scope: other api key, idem-1');
    isnt($b, $a, 'scope: another api key gets another notification');
    my $c = is_new(send_key({ %$body, user_id => 'idem-2' }, 'key-scope'),
        'scope: demo, idem-2');
    isnt($c, $a, 'scope: another user gets another notification');
    isnt($c, $b, 'scope: and not the other key\'s either');
    is_dup(send_key($body, 'key-scope', auth => 'other:other-secret'), $b,
        'scope: other api key again');
    is_dup(send_key({ %$body, user_id => 'idem-2' }, 'key-scope'), $c,
        'scope: demo, idem-2 again');
    for my $id ($a, $b, $c) {
        my @l = $t->wait_deliveries($id, 1);
        is(scalar @l, 1, "scope: $id delivered once");
    }
    # the key is not shared with a key that differs only in case
    is_new(send_key($body, 'KEY-SCOPE'), 'scope: keys are case-sensitive');
}

# ==== racing requests ======================================================

{
    my $N = 20;
    my (%ids, $all_ok);
    $all_ok = 1;
    for my $i (1 .. $N) {
        my $key = "race-key-$i";
        my $body = { user_id => 'idem-race', channels => ['email'],
                     body => "race $i" };
        my @c = map { $t->conn } 1 .. 3;
        my $req = $t->request_bytes(POST => '/v1/notifications',
            body => $body, close => 1,
            headers => { 'Idempotency-Key' => $key });
        $_->write($req) for @c;
        my @r = map { my $x = eval { $_->read_response } // { status => 0,
            error => $@ }; $_->close; $x } @c;
        my @st = sort map { $_->{status} } @r;
        my %id = map { (($_->{json} && $_->{json}{id}) // 'none') => 1 } @r;
        my $ok = is_deeply(\@st, [200, 200, 202],
            "race $i: one 202 and two 200");
        $ok &= is(scalar keys %id, 1, "race $i: every answer has one id");
        $ok &= is(scalar(grep { $_->{json} && $_->{json}{duplicate} } @r), 2,
            "race $i: two answers are duplicates");
        diag(explain \@r) unless $ok;
        $all_ok &&= $ok;
        $ids{$i} = (keys %id)[0];
    }
    my @l;
    $t->wait_for(sub {
        @l = grep { ($_->{user_id} // '') eq 'idem-race' } $t->deliveries;
        @l >= $N;
    });
    sleep 0.5;
    @l = grep { ($_->{user_id} // '') eq 'idem-race' } $t->deliveries;
    is(scalar @l, $N, "race: $N lines in deliveries.log for $N keys");
    my %per;
    $per{$_->{body} // ''}++ for @l;
    is_deeply([grep { ($per{"race $_"} // 0) != 1 } 1 .. $N], [],
        'race: exactly one line per key') or diag(explain \%per);
    my $r = $t->http(GET => '/v1/users/idem-race/notifications?limit=100');
    is(scalar @{$r->{json} && $r->{json}{notifications} || []}, $N,
        "race: the user lists $N notifications") or diag(explain $r);
}

$t->stop;

# ==== retention: idempotency_ttl 2s ========================================

{
    my $t2 = Herald::Test->new;
    $t2->default_conf(workers => 2, extra => 'idempotency_ttl 2s;');
    $t2->run(env => $t2->clock_env);
    $t2->put_user('idem-ttl', { email => 'ttl@example.com' });
    my $body = { user_id => 'idem-ttl', channels => ['email'], body => 't' };
    my $h = { headers => { 'Idempotency-Key' => 'key-ttl' } };
    my $r = $t2->send_note($body, %$h);
    is($r->{status}, 202, 'ttl: first 202') or diag(explain $r);
    my $a = $r->{json} && $r->{json}{id} // 'none-a';
    $r = $t2->send_note($body, %$h);
    is($r->{status}, 200, 'ttl: within retention, 200') or diag(explain $r);
    is($r->{json} && $r->{json}{id}, $a, 'ttl: within retention, same id');

    $t2->clock_advance(3000);
    $r = $t2->send_note($body, %$h);
    is($r->{status}, 202, 'ttl: after 3 s (ttl 2s), 202 again')
        or diag(explain $r);
    my $b = $r->{json} && $r->{json}{id} // 'none-b';
    isnt($b, $a, 'ttl: a new notification');
    ok($r->{json} && JSON::PP::is_bool($r->{json}{duplicate})
        && !$r->{json}{duplicate}, 'ttl: "duplicate": false');
    $r = $t2->send_note($body, %$h);
    is($r->{status}, 200, 'ttl: the new one is remembered') or diag(explain $r);
    is($r->{json} && $r->{json}{id}, $b, 'ttl: the new id');
    my @l = $t2->wait_deliveries($b, 1);
    is(scalar $t2->deliveries_for($a) + scalar $t2->deliveries_for($b), 2,
        'ttl: two deliveries in all');
    $t2->stop;
}

done_testing();
