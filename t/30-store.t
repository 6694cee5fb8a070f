#!/usr/bin/perl

# Store persistence across a clean restart, and the shard count being fixed
# at store creation: an explicit mismatch is a start-up error naming both
# numbers; "shards auto" (or no directive) uses the recorded count.

use strict;
use warnings;
no warnings qw(uninitialized);

use Test::More;
use Herald::Test;

my $t = Herald::Test->new;
my $store = $t->dir . '/store';

$t->default_conf(workers => 2, store_extra => 'shards 2;');
$t->run;

# ==== write some state =====================================================

my (%users, %notes);
for my $i (1 .. 12) {
    my $u = "st-u$i";
    my $r = $t->http(PUT => "/v1/users/$u", body => {
        email => "$u\@example.com", phone => "+1555200$i", locale => 'de',
        timezone => 'Europe/Berlin' });
    like($r->{status}, qr/^20[01]$/, "PUT $u") or diag(explain $r);
    $users{$u} = $r->{json}{user};

    $r = $t->http(POST => '/v1/notifications', body => {
        user_id => $u, channels => ['email', 'sms'], title => "title $i",
        body => "body $i" });
    is($r->{status}, 202, "POST for $u") or diag(explain $r);
    $notes{$r->{json}{id}} = $u if $r->{json}{id};
}
my %shards = map { $_->{shard} => 1 } values %users;
ok(keys %shards == 2, 'users on both shards') or diag(explain \%users);

sub all_delivered
{
    my ($t, $ids) = @_;
    for my $id (@$ids) {
        my $r = $t->http(GET => "/v1/notifications/$id");
        return 0 unless $r->{status} == 200;
        my @d = @{$r->{json}{deliveries} // []};
        return 0 unless @d == 2 && !grep { $_->{status} ne 'delivered' } @d;
    }
    return 1;
}

my @ids = sort keys %notes;
ok($t->wait_for(sub { all_delivered($t, \@ids) }, 20),
    'all notifications delivered before the restart');

my $lines_before = () = $t->deliveries;
is($lines_before, 2 * @ids, 'deliveries.log: 2 lines per notification');

$t->stop;
ok(!$t->{stop_timed_out}, 'herald stopped on SIGTERM');
SKIP: {
    skip 'daemon mode: herald is not our child', 1
        unless defined $t->exit_status;
    is($t->exit_status, 0, 'exit status 0 after SIGTERM');
}
ok(-d $store, "store directory $store exists");

# ==== restart on the same store ============================================

$t->run;

my $bad = 0;
for my $u (sort keys %users) {
    my $r = $t->http(GET => "/v1/users/$u");
    if ($r->{status} != 200) {
        $bad++;
        diag("GET $u after restart: " . explain($r));
        next;
    }
    my $got = $r->{json}{user};
    for my $k (qw(id email phone locale timezone shard created_at updated_at)) {
        next if $got->{$k} eq $users{$u}{$k};
        $bad++;
        diag("$u.$k was \"$users{$u}{$k}\", after restart \"$got->{$k}\"");
    }
}
is($bad, 0, scalar(keys %users) . ' users unchanged after restart');

$bad = 0;
for my $id (@ids) {
    my $r = $t->http(GET => "/v1/notifications/$id");
    my @d = @{$r->{json}{deliveries} // []};
    next if $r->{status} == 200 && $r->{json}{user_id} eq $notes{$id}
        && @d == 2 && !grep { $_->{status} ne 'delivered' } @d;
    $bad++;
    diag("GET /v1/notifications/$id after restart: " . explain($r));
}
is($bad, 0, scalar(@ids) . ' notifications still there, still delivered');

# nothing delivered before a clean stop is delivered again
sleep 2;
my %count;
$count{$_->{delivery_id}}++ for $t->deliveries;
my @dups = grep { $count{$_} > 1 } sort keys %count;
is(scalar @dups, 0, 'no delivery sent twice across a clean restart')
    or diag("duplicates: @dups");

# the store still accepts writes after the restart
{
    my $r = $t->http(POST => '/v1/notifications', body => {
        user_id => 'st-u1', channels => ['email'], title => 'after',
        body => 'restart' });
    is($r->{status}, 202, 'POST after restart') or diag(explain $r);
    my $id = $r->{json}{id};
    ok(!grep({ $_ eq $id } @ids), 'new notification id is not reused');
    ok($t->wait_for(sub {
        grep { $_->{notification_id} eq $id } $t->deliveries }, 10),
        'notification after restart delivered');
}

$t->stop;

# ==== shard count mismatch =================================================

$t->default_conf(workers => 2, store_extra => 'shards 4;');
{
    my ($code, $stderr, $errlog) = $t->run_expect_exit(timeout => 10);
    ok(defined $code && $code != 0, 'start with "shards 4" on a 2-shard '
        . 'store fails') or diag("exit: " . ($code // 'still running'));
    # spec: store var/store has 2 shards, ...; the path may be quoted
    my $msg = qr/store "?\Q$store\E"? has 2 shards, "shards" directive says 4/;
    like($stderr . $errlog, $msg, 'error names the store and both numbers')
        or diag("stderr:\n$stderr\nerror log:\n$errlog");
    like($stderr, qr/has 2 shards, "shards" directive says 4/,
        'the error is on stderr') or diag("stderr:\n$stderr");
}

{
    my ($code, $out) = $t->test_conf;
    note("-t with the mismatch: exit $code: $out");
}

# ==== "shards auto" and no "shards" use the recorded count =================

for my $variant (['shards auto;', 4], ['', 3]) {
    my ($extra, $workers) = @$variant;
    my $name = $extra eq '' ? 'no "shards" directive' : "\"$extra\"";
    $t->default_conf(workers => $workers, store_extra => $extra);
    ok(eval { $t->run; 1 }, "$name with workers $workers starts")
        or do { diag($@); next };

    my $mismatch = 0;
    for my $u (sort keys %users) {
        my $r = $t->http(GET => "/v1/users/$u");
        $mismatch++, diag(explain $r)
            unless $r->{status} == 200
                && $r->{json}{user}{shard} eq $users{$u}{shard};
    }
    is($mismatch, 0, "$name: users readable, same shard as before");

    my $r = $t->http(PUT => '/v1/users/st-new-' . $workers,
        body => { email => 'new@example.com' });
    like($r->{status}, qr/^20[01]$/, "$name: PUT a new user")
        or diag(explain $r);
    like($r->{json}{user}{shard}, qr/^[01]$/,
        "$name: new user's shard is 0 or 1 (2 shards)");
    $t->stop;
}

done_testing();
