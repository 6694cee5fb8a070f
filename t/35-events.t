#!/usr/bin/perl
# Event tracking: the durable, resumable feed (GET /v1/events), opens and
# clicks from apps (POST /v1/events) and from email links (signed pixel and
# click links: no open redirect), and the counters of GET /v1/stats.

use strict;
use warnings;
use Test::More;
use lib 't/lib';
use Herald::Test;

Herald::Test->require_binary;

my $t = Herald::Test->new;
$t->default_conf(workers => 2, extra => 'tracking_url https://t.example.com;');
$t->run;

for my $u (qw(ev1 ev2 ev3)) {
    $t->http(PUT => "/v1/users/$u", body => { email => "$u\@example.com" });
}
my %nid;
for my $u (qw(ev1 ev2 ev3)) {
    my $r = $t->http(POST => '/v1/notifications', body => { user_id => $u,
        category => 'promo', channels => ['email'],
        email => { subject => 'Sale', text => 'x',
                   html => '<html><body><a href="https://shop.example.com/a?b=1">shop</a></body></html>' } });
    is($r->{status}, 202, "send to $u");
    $nid{$u} = $r->{json}{id};
}
ok($t->wait_for(sub { @{ $t->deliveries } == 3 }, 10), 'three emails delivered');
my ($line) = grep { $_->{user_id} eq 'ev1' } $t->deliveries;
my ($click) = $line->{html} =~ m{href="https://t\.example\.com/t/c/([^"]+)"};
my ($open) = $line->{html} =~ m{<img src="https://t\.example\.com/t/o/([^"]+)" width="1"};
ok($click, 'the link goes through a click token');
ok($open, 'an open pixel');
like($line->{html}, qr{<img [^>]+></body>}, 'the pixel sits before </body>');

my $r = $t->http(GET => "/t/o/$open", auth => undef);
is($r->{status}, 200, 'pixel: 200');
is($r->{headers}{'content-type'}, 'image/gif', 'a GIF');
is(length $r->{body}, 43, 'of 43 bytes');
$r = $t->http(GET => "/t/c/$click", auth => undef);
is($r->{status}, 302, 'click: 302');
is($r->{headers}{location}, 'https://shop.example.com/a?b=1',
    'to the signed URL');
(my $bad = $click) =~ s/^(.)/$1 eq 'A' ? 'B' : 'A'/e;
is($t->http(GET => "/t/c/$bad", auth => undef)->{status}, 404,
    'an edited click token: 404, no redirect');
is($t->http(GET => "/t/c/$open", auth => undef)->{status}, 404,
    'an open token is no click token');

my $ev2_delivery = (grep { $_->{user_id} eq 'ev2' } $t->deliveries)[0]{delivery_id};
$r = $t->http(POST => '/v1/events', body => { delivery_id => $ev2_delivery,
    type => 'opened' });
is($r->{status}, 202, 'POST /v1/events: opened');
is($t->http(POST => '/v1/events', body => { delivery_id => $ev2_delivery,
    type => 'read' })->{status}, 400, 'an unknown type: 400');
is($t->http(POST => '/v1/events', body => { delivery_id => 'n00ffffffffffffffff-0',
    type => 'opened' })->{status}, 404, 'an unknown delivery: 404');

my $n = $t->http(GET => "/v1/notifications/$nid{ev1}")->{json};
my @ev = map { $_->{event} } @{ $n->{deliveries}[0]{timeline} };
ok((grep { $_ eq 'opened' } @ev) && (grep { $_ eq 'clicked' } @ev),
    'opened and clicked on the timeline') or diag explain \@ev;

# ==== the feed: everything once, in time order, resumable ====
my (@all, $cursor);
my $page = $t->http(GET => '/v1/events?limit=4');
is($page->{status}, 200, 'GET /v1/events');
my $guard = 0;
while ($guard++ < 20) {
    push @all, @{ $page->{json}{events} };
    last unless @{ $page->{json}{events} };
    $cursor = $page->{json}{next_cursor};
    $page = $t->http(GET => "/v1/events?limit=4&since=$cursor");
}
my %types;
$types{$_->{type}}++ for @all;
is($types{accepted}, 3, '3 accepted');
is($types{delivered}, 3, '3 delivered');
is($types{opened}, 2, '2 opened');
is($types{clicked}, 1, '1 clicked');
my %ids;
$ids{$_->{id}}++ for @all;
is(scalar(grep { $_ > 1 } values %ids), 0, 'no event twice across pages');
my @at = map { $_->{at} } @all;
is_deeply(\@at, [sort @at], 'in time order');
$t->http(POST => '/v1/events', body => { delivery_id => $ev2_delivery,
    type => 'clicked' });
$page = $t->http(GET => "/v1/events?since=$cursor");
is(scalar @{ $page->{json}{events} }, 1, 'the cursor resumes: one new event');
is($page->{json}{events}[0]{type}, 'clicked', 'the new one');
is($t->http(GET => '/v1/events?since=x.y')->{status}, 400, 'a bad cursor: 400');

# ==== stats ====
my $s = $t->http(GET => '/v1/stats')->{json}{stats};
is($s->{'category:promo'}{accepted}, 3, 'stats: accepted per category');
is($s->{'category:promo'}{delivered}, 3, 'stats: delivered');
is($s->{'category:promo'}{opened}, 2, 'stats: opened');
is($s->{'category:promo'}{clicked}, 2, 'stats: clicked');
ok(abs($s->{'category:promo'}{open_rate} - 2 / 3) < 0.01, 'open rate');

# ==== what an event shows, and how it is stored ====
my ($acc) = grep { $_->{type} eq 'accepted' && $_->{user_id} eq 'ev1' } @all;
like($acc->{at}, qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, 'at: ISO 8601, ms');
is($acc->{notification_id}, $nid{ev1}, 'the notification id');
like($acc->{delivery_id}, qr/^\Q$nid{ev1}\E-0$/, 'the delivery id');
is_deeply([grep { exists $acc->{$_} } qw(at type delivery_id notification_id user_id channel category)],
    [qw(at type delivery_id notification_id user_id channel category)],
    'every field of the event') or diag explain $acc;

# the feed survives a restart
$t->stop;

SKIP: {
    skip 'mdb_dump/mdb_load (lmdb-utils) not installed', 4
        unless grep { -x "$_/mdb_dump" } split /:/, $ENV{PATH};
    # stored compact: the time in ms, and no notification id, which a
    # reader works out from the delivery id
    my $key = sprintf('%016x', $acc->{seq});
    my $rec = $t->store_value($acc->{shard}, 'events', $key) // '';
    like($rec, qr/^\x01\{"at":\d{13},"type":"accepted","delivery_id":"\Q$acc->{delivery_id}\E"/,
        'stored: the time as ms') or diag $rec;
    unlike($rec, qr/notification_id/, 'stored: no notification id');
    # an event as herald stored it before (ISO time, the notification id)
    # reads the same
    my $old = qq(\x01{"at":"$acc->{at}","type":"accepted","delivery_id":"$acc->{delivery_id}","notification_id":"$nid{ev1}","user_id":"ev1","channel":"email","category":"promo"});
    ok($t->store_replace($acc->{shard}, 'events', $key, $old, hex => 1),
        'an event written the old way (mdb_load)');
    $t->run;
    my ($again) = grep { $_->{id} eq $acc->{id} }
        @{ $t->http(GET => '/v1/events?limit=1000')->{json}{events} };
    is_deeply($again, $acc, 'reads as before') or diag explain $again;
    $t->stop;
}

$t->run;
$page = $t->http(GET => '/v1/events?limit=1000');
is(scalar @{ $page->{json}{events} }, scalar(@all) + 1, 'the feed is durable');
$t->stop;
done_testing;
