#!/usr/bin/perl
# A store that fills up: past the high-water mark ingest answers 503 with
# Retry-After and stores nothing; at max_map_size a commit that does not
# fit answers 507; in both cases what was accepted before stays readable.

use strict;
use warnings;
use Test::More;
use lib 't/lib';
use Herald::Test;

Herald::Test->require_binary;

sub fill
{
    my ($t, $n, $size) = @_;
    my (@ok, %codes);
    for my $i (1 .. $n) {
        my $r = $t->http(POST => '/v1/notifications', body => {
            user_id => 'big', channels => ['email'],
            scheduled_filler($i), body => ('x' x $size) });
        $codes{ $r->{status} }++;
        push @ok, $r->{json}{id} if $r->{status} == 202;
        return (\@ok, \%codes, $r) if $r->{status} >= 500;
    }
    return (\@ok, \%codes, undef);
}

# far-future sends stay in the store: nothing is delivered and removed
sub scheduled_filler { (send_at => '2099-01-01T00:00:00Z') }

# ==== high-water mark: 503 ====
{
    my $t = Herald::Test->new;
    $t->default_conf(workers => 1, store_extra =>
        "shards 1; map_size 1m; max_map_size 4m; high_water 25%;");
    $t->run;
    is($t->http(PUT => '/v1/users/big', body => { email => 'b@example.com' })
        ->{status}, 201, 'user');
    my ($ok, $codes, $last) = fill($t, 200, 60000);
    ok(@$ok > 5, scalar(@$ok) . ' accepted before the mark');
    ok(!$last, 'no refusal before the pressure check runs') if 0;
    sleep 1.2;    # the mark is looked at once a second
    my $r = $t->http(POST => '/v1/notifications', body => {
        user_id => 'big', channels => ['email'], body => 'one more' });
    is($r->{status}, 503, 'past the high-water mark: 503');
    is($r->{json}{error}{code}, 'store_busy', 'code store_busy');
    like($r->{headers}{'retry-after'} // '', qr/^\d+$/, 'Retry-After');
    $r = $t->http(PUT => '/v1/users/other', body => { email => 'o@example.com' });
    is($r->{status}, 503, 'user writes are refused too');
    is($t->http(GET => '/v1/users/big')->{status}, 200, 'reads still work');
    my $missing = grep { $t->http(GET => "/v1/notifications/$_")->{status}
        != 200 } @$ok;
    is($missing, 0, 'every accepted notification is still there');
    like($t->http(GET => '/metrics')->{body},
        qr/herald_ingest_rejected_total [1-9]/, 'refusals counted');
    $t->stop;
}

# ==== max_map_size: 507 and nothing lost ====
{
    my $t = Herald::Test->new;
    $t->default_conf(workers => 1, store_extra =>
        "shards 1; map_size 1m; max_map_size 2m; high_water 100%;");
    $t->run;
    is($t->http(PUT => '/v1/users/big', body => { email => 'b@example.com' })
        ->{status}, 201, 'user');
    my ($ok, $codes, $last) = fill($t, 400, 60000);
    ok($last, 'the store filled up');
    is($last && $last->{status}, 507, 'a commit that does not fit: 507');
    is($last && $last->{json}{error}{code}, 'store_full', 'code store_full');
    like($t->error_log, qr/store map grown from 1048576 to 2097152/,
        'the map grew to max_map_size first');
    my $missing = grep { $t->http(GET => "/v1/notifications/$_")->{status}
        != 200 } @$ok;
    is($missing, 0, scalar(@$ok) . ' accepted notifications all readable');
    $t->stop;
    $t->run;
    $missing = grep { $t->http(GET => "/v1/notifications/$_")->{status}
        != 200 } @$ok;
    is($missing, 0, 'and still there after a restart');
    $t->stop;
}

done_testing;
