#!/usr/bin/perl

# Cross-worker hand-off: with 2 workers and 2 shards, a request accepted by
# worker W for a user on shard S with S % 2 != W goes through the owner's
# inbox and the answer comes back.  Separate connections spread over both
# workers (SO_REUSEPORT), users spread over both shards.

use strict;
use warnings;
no warnings qw(uninitialized);

use Test::More;
use Herald::Test;

my $t = Herald::Test->new;
$t->default_conf(workers => 2, store_extra => 'shards 2;');
$t->run;

my (@rows, %workers, %shards, $fail);
my $crossed = 0;

# at least 20 connections; keep going (up to 80) until a hand-off was seen
for my $i (1 .. 80) {
    last if $i > 20 && $crossed;
    my $u = "ho-u$i";

    my $c = $t->conn;
    my $put = $c->request(PUT => "/v1/users/$u",
        body => { email => "$u\@example.com", phone => "+1555100$i" });
    my $post = $c->request(POST => '/v1/notifications', body => {
        user_id => $u, channels => ['email', 'sms'], title => "hand-off $i",
        body => "to $u" });
    my $get = $c->request(GET => "/v1/users/$u");
    $c->close;

    my $w = $put->{headers}{'x-herald-worker'};
    my $s = $put->{json} && $put->{json}{user}{shard};
    my $row = {
        user => $u, worker => $w, shard => $s,
        post_worker => $post->{headers}{'x-herald-worker'},
        put => $put->{status}, post => $post->{status},
        get => $get->{status}, id => $post->{json} && $post->{json}{id},
        ndeliv => ref $post->{json}{deliveries} eq 'ARRAY'
            ? scalar @{$post->{json}{deliveries}} : 0,
        get_email => $get->{json} && $get->{json}{user}{email},
    };
    push @rows, $row;
    $workers{$w}++;
    $shards{$s}++ if defined $s;
    $crossed++ if defined $w && defined $s && $w =~ /^\d+$/
        && $s =~ /^\d+$/ && $w != $s % 2;

    if ($row->{put} !~ /^20[01]$/ || $row->{post} != 202 || $row->{get} != 200
        || $row->{ndeliv} != 2 || $row->{get_email} ne "$u\@example.com"
        || $row->{post_worker} ne $w)
    {
        $fail++;
        diag("connection $i failed:\nPUT " . explain($put) . "POST "
            . explain($post) . "GET " . explain($get));
    }
}

note(sprintf("%-8s worker shard put post get", 'user'));
note(sprintf("%-8s %6s %5s %3s %4s %3s", @$_{qw(user worker shard put post get)}))
    for @rows;

ok(!$fail, scalar(@rows) . ' connections: PUT 200/201, POST 202, GET 200');
ok(!grep({ $_->{worker} !~ /^[01]$/ } @rows),
    'X-Herald-Worker is 0 or 1 on every response');
ok(!grep({ $_->{shard} !~ /^[01]$/ } @rows), 'user.shard is 0 or 1');
ok($crossed, "$crossed requests were handed to the other worker "
    . '(X-Herald-Worker != shard % 2)') or diag(explain \@rows);
ok(keys %workers == 2, 'both workers accepted connections')
    or diag(explain \%workers);
ok(keys %shards == 2, 'users landed on both shards') or diag(explain \%shards);

# the shard is stable: every worker reports the same shard for a user
{
    my $bad = 0;
    for my $row (@rows) {
        for (1 .. 2) {
            my $r = $t->http(GET => "/v1/users/$row->{user}");
            $bad++, diag(explain $r)
                unless $r->{status} == 200
                    && $r->{json}{user}{shard} eq $row->{shard};
        }
    }
    is($bad, 0, 'GET from fresh connections agrees on the shard');
}

# every notification is delivered, both channels
my %want = map { $_->{id} => $_ } grep { $_->{id} } @rows;
my %got;
$t->wait_for(sub {
    %got = ();
    $got{$_->{notification_id}}{$_->{channel}}++ for $t->deliveries;
    !grep { !$got{$_} || keys %{$got{$_}} != 2 } keys %want;
}, 20);
my @missing = grep { !$got{$_} || keys %{$got{$_}} != 2 } sort keys %want;
is(scalar @missing, 0, scalar(keys %want) . ' notifications delivered on '
    . 'both channels') or diag("missing: @missing");

my $undelivered = 0;
for my $id (sort keys %want) {
    my $r = $t->http(GET => "/v1/notifications/$id");
    my @d = @{$r->{json}{deliveries} // []};
    if ($r->{status} != 200 || @d != 2 || grep { $_->{status} ne 'delivered' } @d) {
        $undelivered++;
        diag("GET /v1/notifications/$id: " . explain($r));
    }
}
is($undelivered, 0, 'GET shows every hand-off notification delivered');

# the log sink line carries the right user for each notification
my $wrong = 0;
for my $d ($t->deliveries) {
    my $row = $want{$d->{notification_id}} or next;
    $wrong++ if $d->{user_id} ne $row->{user}
        || $d->{body} ne "to $row->{user}";
}
is($wrong, 0, 'deliveries.log lines match their users');

$t->stop;
done_testing();
