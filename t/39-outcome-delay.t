#!/usr/bin/perl

# outcome_delay (store block): a batch of writes that only the dispatcher
# waits on (the outcomes of sends) is held up to that long to gather more
# before it commits. A client's write that joins it commits it at once,
# and so does a GET, which answers only with what is durable (until then
# the delivery shows "sending"); a shutdown commits it. Checked through
# the store itself (mdb_dump) while herald runs, with a hold of 1 s. The
# checks that a record is not in the store yet are skipped when the
# machine took longer than the hold to get there.

use strict;
use warnings;
no warnings qw(uninitialized);

use Test::More;
use Time::HiRes qw(time);
use Herald::Test;

plan skip_all => 'mdb_dump (lmdb-utils) not installed'
    unless grep { -x "$_/mdb_dump" } split /:/, $ENV{PATH};

my $HOLD = 1.0;
my $t = Herald::Test->new;
$t->default_conf(workers => 1, store_extra => 'outcome_delay 1s;');
$t->run;

# the outcome record of delivery ID in the store, decoded, or undef
sub stored
{
    my $v = $t->store_value(0, 'outcomes', unpack('H*', $_[0])) // return undef;
    $v =~ s/^\x01//;
    return Herald::Test->json_decode($v);
}

# sends an email to od-1 and waits for the sink's line (not for GET, which
# would commit the outcome); (delivery id, notification id, when seen)
sub send_one
{
    my ($body) = @_;
    my $r = $t->send_note({ user_id => 'od-1', channels => ['email'],
        body => $body });
    is($r->{status}, 202, "$body: accepted") or diag explain $r;
    my $nid = $r->{json}{id};
    ok($t->wait_for(sub { scalar $t->deliveries_for($nid) }, 10, 0.02),
        "$body: delivered to the sink");
    return ($r->{json}{deliveries}[0]{id}, $nid, time);
}

# checks that delivery DID's outcome is not in the store yet, unless the
# hold may have passed since SEEN
sub held
{
    my ($did, $seen, $what) = @_;
    my $o = stored($did);
    my $late = time - $seen;
  SKIP: {
        skip sprintf('%s: the store was read %.2f s after the delivery', $what,
            $late), 1 if $late > 0.8 * $HOLD;
        ok(!defined $o, "$what: the outcome is not in the store yet")
            or diag explain $o;
    }
}

is($t->put_user('od-1', { email => 'od1@example.com' })->{status}, 201,
    'user od-1');

# ==== held, then committed when the delay has passed =======================

my ($did, $nid, $seen) = send_one('one');
held($did, $seen, 'one');
ok($t->wait_for(sub { defined stored($did) }, 5, 0.05),
    'one: the outcome is committed once the hold has passed');
is(stored($did)->{status}, 'delivered', 'one: stored as delivered');

# ==== a client's write joins the held batch: it commits at once ============

($did, $nid, $seen) = send_one('two');
held($did, $seen, 'two');
my ($t0, $n) = (time);
my $r = $t->put_user('od-1', { email => 'od1b@example.com' });
my $took = time - $t0;
is($r->{status}, 200, 'two: a user update while the outcome is held');
cmp_ok($took, '<', 0.9 * $HOLD, 'two: its answer was not held')
    or diag "answered after $took s";
is(stored($did)->{status}, 'delivered',
    'two: the outcome was committed with it');

# ==== so does a GET that would show it: answers show only what is durable

($did, $nid, $seen) = send_one('three');
held($did, $seen, 'three');
$t0 = time;
$r = $t->http(GET => "/v1/notifications/$nid");
$took = time - $t0;
# the job is out until its outcome is durable: "sending" for the moment
like(($t->delivery_statuses($r->{json}))[0], qr/^(?:sending|delivered)$/,
    'three: GET shows it sending or delivered') or diag explain $r;
cmp_ok($took, '<', 0.9 * $HOLD, 'three: its answer was not held')
    or diag "answered after $took s";
is(stored($did)->{status}, 'delivered',
    'three: the outcome was committed before the answer');
$n = $t->notification($nid);
is(($t->delivery_statuses($n))[0], 'delivered', 'three: then GET says delivered')
    or diag explain $n;

# ==== a shutdown commits a held batch ======================================

($did, $nid, $seen) = send_one('four');
held($did, $seen, 'four');
$t->stop(signal => 'QUIT');
is($t->exit_status, 0, 'four: herald exits cleanly');
is(stored($did)->{status}, 'delivered',
    'four: the held outcome was committed at shutdown');
unlike($t->error_log, qr/\[(?:alert|emerg|crit)\]/,
    'no alert in the error log');

done_testing();
