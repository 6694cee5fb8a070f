#!/usr/bin/perl

# 1000 concurrent HTTP/2 streams on one connection (issue 4): one herald
# worker, an APNs provider with `connections 1`, the C fake APNs
# (t/fake/apns.c) announcing 1 stream then 1000 and answering each push
# 500 ms late, so requests pile up on the connection. 1500 users with one
# iOS device each get one notification each, all due at the same second
# (send_at), spread over 4 shards of the one worker: the fake must see ~1000 streams open at once on a single
# connection, never more than it allows, and every notification delivered
# exactly once.
#
# Also: a provider token signed with a key the fake does not know is
# refused (403 InvalidProviderToken) and nothing is accepted for it; a
# device token the fake answers slowly ("0de1...", 2 s) is delivered in one
# attempt while other pushes on the same connection go on.

use strict;
use warnings;

use Test::More;
use Digest::SHA qw(sha256_hex);
use POSIX qw(strftime);
use Time::HiRes qw(time sleep);
use Herald::Test;
use Herald::Push;

my $why = Herald::Push::have_tools();
plan(skip_all => $why) if $why;

my $N = 1500;
my $t = Herald::Test->new;
my $dir = $t->dir;
my $pki = Herald::Push::make_pki($dir);
my $k1 = Herald::Push::make_apns_key($dir, 'k1');
my $rogue = Herald::Push::make_apns_key($dir, 'rogue');

my $fake = Herald::Push->start_fake('apns', $dir,
    '--cert', $pki->{cert}, '--key', $pki->{key},
    '--jwt', "KEY0000001:TEAM000001:$k1->{pub}",
    '--initial-streams', 1, '--max-streams', 1000, '--latency-ms', 500,
    '--slow-ms', 2000);

sub provider
{
    my ($name, $key, $app) = @_;
    my $a = $app ? "app $app;" : '';
    return <<"EOF";
provider $name {
    type apns;
    url https://127.0.0.1:${\ $fake->port};
    team_id TEAM000001;
    key_id KEY0000001;
    key_file $key->{p8};
    bundle_id com.example.streams;
    $a
    ca_file $pki->{ca};
    connections 1;
    timeout 10s;
}
EOF
}

# herald keeps at most 512 deliveries in flight per (shard, channel)
# (HD_DISPATCH_INFLIGHT): 4 shards on the one worker can fill 1000 streams
my $conf = $t->default_conf_text(workers => 1, store_extra => 'shards 4;');
my $providers = provider('apns_main', $k1) . provider('apns_rogue', $rogue,
    'rogue');
$conf =~ s/^channel push .*$/channel push { provider apns_main apns_rogue; }/m
    or die "no push channel in the default conf";
$conf =~ s/^(provider sink \{)/$providers\n$1/m;
$conf =~ s/^access_log .*$/access_log off;/m;
$t->write_conf($conf);
$t->run;

# Pipelined requests, 100 per connection; returns the responses.
sub batch
{
    my (@reqs) = @_;
    my @all;
    while (my @b = splice(@reqs, 0, 100)) {
        my $c = $t->conn;
        $c->write(join('', map { $t->request_bytes(@$_) } @b)) or die;
        push @all, $c->read_responses(scalar @b, timeout => 30);
        $c->close;
    }
    return @all;
}

sub ok2xx { grep { $_->{status} >= 200 && $_->{status} < 300 } @_ }

# ==== 1500 notifications due at once =====================================

my %token_of = map { ("s$_" => 'a' . substr(sha256_hex("streams-$_"), 1)) }
    1 .. $N;
my $t0 = time;
is(scalar ok2xx(batch(map { [PUT => "/v1/users/s$_", body => {}] } 1 .. $N)),
    $N, "$N users");
is(scalar ok2xx(batch(map { [POST => "/v1/users/s$_/devices", body => {
    platform => 'ios', token => $token_of{"s$_"} }] } 1 .. $N)),
    $N, "$N devices");
my $setup = time - $t0;

my $due = int(time + 3 + $setup) + 1;
my $send_at = strftime('%Y-%m-%dT%H:%M:%SZ', gmtime $due);
my @res = batch(map { [POST => '/v1/notifications', body => {
    user_id => "s$_", channels => ['push'], title => 'Streams',
    body => "n$_", send_at => $send_at }] } 1 .. $N);
is(scalar(grep { $_->{status} == 202 } @res), $N, "$N notifications queued");
cmp_ok(time, '<', $due, 'queued before they are due')
    or diag('queueing took longer than the lead time');
my @nids = map { $_->{json} && $_->{json}{id} } @res;

my %mine = map { ($_ => 1) } values %token_of;
my @got;
$fake->wait_for(sub {
    @got = grep { $mine{$_->{token}} } $fake->received;
    @got >= $N;
}, 60);
is(scalar @got, $N, "the fake accepted $N");
my %per_token;
$per_token{$_->{token}}++ for @got;
is(scalar keys %per_token, $N, 'one for each device');
my @twice = grep { $per_token{$_} > 1 } keys %per_token;
is(scalar @twice, 0, 'none accepted twice') or diag(explain \@twice);

my %conns = map { ($_->{conn} => 1) } @got;
is(scalar keys %conns, 1, 'all on one connection')
    or diag(explain [sort keys %conns]);
my ($max) = sort { $b <=> $a } map { $_->{concurrent} } @got;
cmp_ok($max, '>=', 900, "~1000 streams open at once (max $max)");
my @over = grep { $_->{concurrent} > $_->{limit} } @got;
is(scalar @over, 0, 'never more streams than the limit in force');
is(scalar $fake->events('violation'), 0, 'no stream limit violation');
is(scalar $fake->events('goaway'), 0, 'no GOAWAY');

# herald's side: every one delivered, in one attempt
my ($done, $bad) = (0, 0);
$t->wait_for(sub {
    my $c = $t->conn;
    ($done, $bad) = (0, 0);
    for my $nid (@nids) {
        my $r = $c->request(GET => "/v1/notifications/$nid");
        my $d = $r->{json} && $r->{json}{deliveries}[0] || {};
        if (($d->{status} // '') eq 'delivered' && ($d->{attempts} // 0) == 1) {
            $done++;
        } elsif (!$bad++ && ($d->{status} // '') ne 'pending') {
            diag('not delivered in one attempt: ', explain($d))
                if ($d->{status} // '') !~ /^(?:queued|sending|in_flight)$/;
        }
    }
    $c->close;
    $done == $N;
}, 30, 0.5);
is($done, $N, "herald: all $N delivered, each in one attempt");

# ==== a provider token the fake cannot verify =============================

{
    my $token = '0b' . substr(sha256_hex('rogue'), 2);
    $t->put_user('rogue', {});
    my $r = $t->add_device('rogue', { platform => 'ios', token => $token,
        app => 'rogue' });
    ok($r->{status} == 201 || $r->{status} == 200, 'rogue: device');
    $r = $t->send_note({ user_id => 'rogue', channels => ['push'],
        title => 'x', body => 'y' });
    is($r->{status}, 202, 'rogue: 202');
    my $n = $t->wait_notification($r->{json}{id}, sub {
        ($_[0]{deliveries}[0]{last_error} // '') ne '' }, 15);
    my $d = $n && $n->{deliveries}[0] || {};
    like($d->{last_error} // '', qr/APNs 403 InvalidProviderToken/,
        'rogue: 403 InvalidProviderToken recorded') or diag(explain $d);
    isnt($d->{status}, 'delivered', 'rogue: not delivered');
    is(scalar(grep { $_->{token} eq $token } $fake->received), 0,
        'rogue: the fake accepted nothing for it');
}

# ==== a slow answer does not hold up the connection ========================

{
    my $slow = '0de1' . substr(sha256_hex('slow'), 4);
    $t->put_user('slow', {});
    $t->add_device('slow', { platform => 'ios', token => $slow });
    my $t1 = time;
    my $r = $t->send_note({ user_id => 'slow', channels => ['push'],
        title => 'x', body => 'slow' });
    is($r->{status}, 202, 'slow: 202');
    my $quick = $t->send_note({ user_id => 's1', channels => ['push'],
        title => 'x', body => 'quick' });
    my $qn = $t->wait_notification($quick->{json}{id}, sub {
        ($_[0]{deliveries}[0]{status} // '') eq 'delivered' }, 10);
    my $sn = $t->notification($r->{json}{id});
    ok($qn && ($sn->{deliveries}[0]{status} // '') ne 'delivered',
        'slow: another push on the connection delivered meanwhile')
        or diag(explain [$qn, $sn]);
    my $n = $t->wait_notification($r->{json}{id}, sub {
        ($_[0]{deliveries}[0]{status} // '') eq 'delivered' }, 10);
    my $d = $n && $n->{deliveries}[0] || {};
    is($d->{status}, 'delivered', 'slow: delivered') or diag(explain $d);
    is($d->{attempts}, 1, 'slow: in one attempt');
    cmp_ok(time - $t1, '>=', 1.9, 'slow: after the fake\'s 2 s');
}

# ==== a user erased while a push is out ====================================
# The outcome must see that the record went away (the dispatcher is told of
# every write to a delivery in flight) and not write it back.

my $erased_did;
{
    my $tok = '0de1' . substr(sha256_hex('erased'), 4);
    $t->put_user('erased', {});
    $t->add_device('erased', { platform => 'ios', token => $tok });
    my $r = $t->send_note({ user_id => 'erased', channels => ['push'],
        title => 'x', body => 'erased while out' });
    is($r->{status}, 202, 'erased: 202');
    $erased_did = $r->{json}{deliveries}[0]{id} // 'none';
    my $n = $t->wait_notification($r->{json}{id}, sub {
        ($_[0]{deliveries}[0]{status} // '') eq 'sending' }, 10);
    ok($n, 'erased: the push is out (sending)') or diag(explain $n);
    $r = $t->http(DELETE => '/v1/users/erased');
    is($r->{status}, 200, 'erased: DELETE while the push is out')
        or diag(explain $r);
    ok($fake->wait_for(sub {
            grep { ($_->{token} // '') eq $tok } $fake->received }, 10),
        'erased: the fake answered the push');
    sleep 0.5; # the outcome's commit
}

$t->stop;
unlike($t->error_log, qr/\[(?:alert|emerg|crit)\]/, 'no alert in the error log');
$fake->stop;

SKIP: {
    skip 'mdb_dump (lmdb-utils) not installed', 1
        unless grep { -x "$_/mdb_dump" } split /:/, $ENV{PATH};
    my $found = 0;
    for my $env (glob($t->dir . '/store/shard-*')) {
        for my $db (qw(deliveries outcomes)) {
            my $dump = `mdb_dump -p -s $db $env`;
            $found++ if $dump =~ /^ \Q$erased_did\E$/m;
        }
    }
    is($found, 0, 'erased: neither the delivery nor an outcome record was written back');
}

done_testing();
