#!/usr/bin/perl

# A stored delivery record that no longer reads (damaged on disk, edited by
# hand with mdb_load) when the dispatcher comes to send it: herald logs it
# by id, drops its queue entry, never sends it, and goes on sending the
# others; GET /v1/notifications/{id} shows it as "unreadable". The
# dispatcher reads records as text (src/core/jtext.c), so this checks that
# reader against a record it cannot split.

use strict;
use warnings;

use Test::More;
use Herald::Test;

for my $tool (qw(mdb_dump mdb_load)) {
    plan skip_all => "$tool (lmdb-utils) not installed"
        unless grep { -x "$_/$tool" } split /:/, $ENV{PATH};
}

my $t = Herald::Test->new;
$t->default_conf(workers => 1);
$t->run(env => $t->clock_env);

my %note;
for my $u (qw(bad good)) {
    is($t->put_user("rec-$u", { email => "$u\@example.com" })->{status}, 201,
        "user rec-$u");
    my $r = $t->send_note({ user_id => "rec-$u", body => "to $u",
        send_at => Herald::Test::rfc3339($t->herald_now + 60) });
    is($r->{status}, 202, "scheduled for rec-$u") or diag(explain $r);
    $note{$u} = $r->{json}{deliveries}[0]{id} // "none-$u";
}
$t->stop;

# ==== damage one delivery record ===========================================

my $bad_key = $note{bad};
ok($t->store_replace(0, 'deliveries', $bad_key,
    qq(\\01{"id":"$bad_key","status":"queued",)),
    'the record of the first delivery cut short (mdb_dump, mdb_load)');

# ==== restart, and let both come due =======================================

$t->run(env => $t->clock_env);
$t->clock_advance(61_000);

my $good_id = $note{good} =~ s/-\d+$//r;
ok($t->wait_for(sub {
    my $g = $t->notification($good_id);
    ($g->{deliveries}[0]{status} // '') eq 'delivered';
}, 20), 'the readable delivery is sent');
ok($t->wait_for(sub {
    $t->error_log =~ /undecodable delivery record "\Q$bad_key\E": dropped from the queue/;
}, 10), 'the unreadable one is logged by id') or diag($t->error_log);

my $sink = $t->read_file('deliveries.log') // '';
like($sink, qr/"delivery_id":"\Q$note{good}\E"/, 'the sink got the good one');
unlike($sink, qr/"delivery_id":"\Q$bad_key\E"/, 'and never the damaged one');

# dropped from the queue: a restart does not meet it again
$t->stop;
$t->run(env => $t->clock_env);
my $before = () = $t->error_log =~ /undecodable delivery record/g;
sleep 1.5;
my $after = () = $t->error_log =~ /undecodable delivery record/g;
is($after, $before, 'not met again after a restart');
{
    my $n = $t->notification($bad_key =~ s/-\d+$//r);
    is($n->{deliveries}[0]{status}, 'unreadable',
        'GET shows the damaged delivery as unreadable')
        or diag(explain $n);
    is($n->{status}, 'failed', 'and the notification as failed');
}
ok($t->running, 'herald still running');
is($t->http(GET => '/healthz')->{status}, 200, 'and healthy');

$t->stop;
done_testing();
