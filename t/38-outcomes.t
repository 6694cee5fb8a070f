#!/usr/bin/perl

# A delivery is kept as two records (src/send/delivery.h): the deliveries
# db holds what ingest wrote, the outcomes db what sending learnt since.
# Checked here through the store itself (mdb_dump) and the API: a send
# writes only the outcome; GET shows the two merged; a later whole rewrite
# (an app's POST /v1/events) folds the outcome back into the delivery; an
# erase removes both; a retrying delivery whose outcome record no longer
# reads is logged by id, dropped from its queue and shown "unreadable".

use strict;
use warnings;
no warnings qw(uninitialized);

use Test::More;
use Herald::Test;

for my $tool (qw(mdb_dump mdb_load)) {
    plan skip_all => "$tool (lmdb-utils) not installed"
        unless grep { -x "$_/$tool" } split /:/, $ENV{PATH};
}

my $t = Herald::Test->new;
# sms goes to a sink that always fails (ENOSPC: transient), with a long
# backoff, so its delivery stays "retrying" with an outcome record
# the store is read while herald runs: outcomes commit at once, not held
# for outcome_delay (t/39 covers the hold)
$t->default_conf(
    workers     => 1,
    channels    => { sms => 'full' },
    store_extra => 'outcome_delay 0;',
    extra       => <<'CONF');
provider full {
    type log;
    path /dev/full;
    retry attempts 5 base 60s max 60s;
}
CONF
$t->run(env => $t->clock_env);

# the record of ID in db DB, decoded (undef when absent), read through
# mdb_dump; raw() is its text, the format byte (\x01) left out
sub raw
{
    my ($db, $id) = @_;
    my $v = $t->store_value(0, $db, unpack('H*', $id)) // return undef;
    $v =~ s/^\x01//;
    return $v;
}
sub rec { my $v = raw(@_); defined $v ? Herald::Test->json_decode($v) : undef }

sub events_of { [map { $_->{event} } @{ $_[0]{timeline} // [] }] }

is($t->put_user('oc-1', { email => 'oc1@example.com', phone => '+15550003801' })
    ->{status}, 201, 'user oc-1');

# ==== a send writes the outcome, not the delivery ==========================

my $r = $t->send_note({ user_id => 'oc-1', channels => ['email'],
    body => 'one' });
is($r->{status}, 202, 'email accepted');
my ($nid, $did) = ($r->{json}{id}, $r->{json}{deliveries}[0]{id});
my $n = $t->wait_notification($nid,
    sub { ($t->delivery_statuses($_[0]))[0] eq 'delivered' });
my $d = $n->{deliveries}[0];
is($d->{status}, 'delivered', 'GET: delivered');
is($d->{attempts}, 1, 'GET: one attempt');
is($d->{provider}, 'sink', 'GET: the provider');
is_deeply(events_of($d), [qw(accepted delivered)], 'GET: the whole timeline')
    or diag explain $d;

my $base = rec('deliveries', $did);
is($base->{status}, 'queued', 'store: the delivery record is as ingest wrote it');
is_deeply(events_of($base), [qw(accepted)], 'store: with its first entry');
my $out = rec('outcomes', $did);
is($out->{status}, 'delivered', 'store: the outcome record says delivered');
is_deeply(events_of($out), [qw(delivered)],
    'store: with the entries after the delivery\'s');
ok(!exists $out->{to} && !exists $out->{user_id},
    'store: and nothing of the delivery itself');
cmp_ok(length(raw('outcomes', $did)), '<', 200,
    'store: the outcome record is small');

# ==== a whole rewrite folds the outcome in =================================

$r = $t->http(POST => '/v1/events',
    body => { delivery_id => $did, type => 'opened' });
is($r->{status}, 202, 'POST /v1/events opened') or diag explain $r;
ok($t->wait_for(sub { !defined rec('outcomes', $did) }, 5),
    'store: the outcome record is gone');
$base = rec('deliveries', $did);
is($base->{status}, 'delivered', 'store: the delivery record has the status');
is_deeply(events_of($base), [qw(accepted delivered opened)],
    'store: and the whole timeline');
$d = $t->notification($nid)->{deliveries}[0];
is($d->{status}, 'delivered', 'GET: still delivered');
is_deeply(events_of($d), [qw(accepted delivered opened)],
    'GET: the same timeline');

# ==== a retry: the outcome carries the queue position ======================

$r = $t->send_note({ user_id => 'oc-1', channels => ['sms'], body => 'two' });
is($r->{status}, 202, 'sms accepted');
my ($snid, $sdid) = ($r->{json}{id}, $r->{json}{deliveries}[0]{id});
$n = $t->wait_notification($snid,
    sub { ($t->delivery_statuses($_[0]))[0] eq 'retrying' });
$d = $n->{deliveries}[0];
is($d->{status}, 'retrying', 'GET: retrying');
like($d->{last_error}, qr/write failed/, 'GET: the last error');
$out = rec('outcomes', $sdid);
is($out->{status}, 'retrying', 'store: the outcome says retrying');
ok($out->{qseq} && $out->{due} && $out->{avoid} eq 'full',
    'store: with the retry\'s queue position and the provider to avoid')
    or diag explain $out;
is(rec('deliveries', $sdid)->{status}, 'queued',
    'store: the delivery record untouched');

# ==== a whole rewrite of a retrying delivery ===============================

$r = $t->http(POST => '/v1/events',
    body => { delivery_id => $sdid, type => 'opened' });
is($r->{status}, 202, 'POST /v1/events on the retrying delivery');
ok($t->wait_for(sub { !defined rec('outcomes', $sdid) }, 5),
    'store: its outcome folded in');
$base = rec('deliveries', $sdid);
is($base->{attempts}, 1, 'store: the delivery record has the attempt');
ok($base->{qseq} && $base->{avoid} eq 'full',
    'store: and the retry\'s queue position') or diag explain $base;
$t->clock_advance(61_000);
$n = $t->wait_notification($snid,
    sub { ($_[0]{deliveries}[0]{attempts} // 0) >= 2 });
$d = $n->{deliveries}[0];
is($d->{attempts}, 2, 'the next attempt is the second');
is($d->{status}, 'retrying', 'and it is retrying');
is_deeply(events_of($d), [qw(accepted retrying opened retrying)],
    'GET: the timeline across the fold') or diag explain $d;
is(rec('outcomes', $sdid)->{status}, 'retrying',
    'store: an outcome record again');

# ==== a damaged outcome record =============================================

$t->stop;
ok($t->store_replace(0, 'outcomes', $sdid, q(\\01{"status":"retrying",)),
    'the retrying outcome cut short (mdb_dump, mdb_load)');
$t->run(env => $t->clock_env);
$t->clock_advance(61_000);
ok($t->wait_for(sub {
    $t->error_log =~ /undecodable outcome record "\Q$sdid\E": dropped from the queue/;
}, 10), 'when due: logged by id and dropped') or diag($t->error_log);
$d = $t->notification($snid)->{deliveries}[0];
is($d->{status}, 'unreadable', 'GET: unreadable') or diag explain $d;
unlike($t->read_file('deliveries.log') // '', qr/\Q$sdid\E/,
    'never sent');
$d = $t->notification($nid)->{deliveries}[0];
is($d->{status}, 'delivered', 'the other delivery reads as before');

# ==== an erase removes both records ========================================

$r = $t->http(DELETE => '/v1/users/oc-1');
is($r->{status}, 200, 'user erased') or diag explain $r;
ok($t->wait_for(sub {
    !grep { defined raw('deliveries', $_) || defined raw('outcomes', $_) }
        $did, $sdid;
}, 5), 'store: neither record of either delivery is left');

ok($t->running, 'herald still running');
$t->stop;
unlike($t->error_log, qr/\[(?:alert|emerg|crit)\]/, 'no alert in the error log');
done_testing();
