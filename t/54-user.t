#!/usr/bin/perl
# "user NAME;": started as root, herald drops to the user once its
# listeners, store and logs are open, and goes on working as that user.

use strict;
use warnings;
use Test::More;
use lib 't/lib';
use Herald::Test;

Herald::Test->require_binary;
plan skip_all => 'needs root' unless $> == 0;
my @pw = getpwnam('nobody');
plan skip_all => 'no user "nobody"' unless @pw;
my $uid = $pw[2];

my $t = Herald::Test->new;
$t->default_conf(workers => 2, extra => 'user nobody;');
$t->run;
# the port accepts before the drop (the kernel queues connections): wait
# for herald to say it is done
ok($t->wait_for(sub { $t->error_log =~ /running as user nobody/ }, 10),
    'logged');

open(my $f, '<', "/proc/" . $t->pid . "/status") or die $!;
my ($uids) = grep { /^Uid:/ } <$f>;
my @u = $uids =~ /(\d+)/g;
is_deeply(\@u, [($uid) x 4], 'real, effective, saved and fs uid are nobody\'s');

is($t->http(PUT => '/v1/users/pu1', body => { email => 'pu1@example.com' })
    ->{status}, 201, 'the store is writable as nobody');
my $r = $t->http(POST => '/v1/notifications',
    body => { user_id => 'pu1', body => 'hi' });
is($r->{status}, 202, 'send: 202');
ok($t->wait_for(sub { @{ $t->deliveries } == 1 }, 10), 'delivered to the sink');
is((stat($t->dir . '/store/shard-000/data.mdb'))[4], $uid,
    'the store files belong to nobody');

# a user that does not exist is a start-up error
my $t2 = Herald::Test->new;
$t2->default_conf(extra => 'user no-such-user-xyz;');
my ($code, $err) = $t2->run_expect_exit;
isnt($code, 0, 'an unknown user: start fails');
like($err, qr/unknown user "no-such-user-xyz"/, 'and says so');

$t->stop;
done_testing;
