#!/usr/bin/perl
# The event webhook: batches of events POSTed in order to a real HTTP
# receiver, signed with HMAC-SHA256, retried with backoff when the
# receiver fails, resumed from a stored cursor after a restart, moved to
# another receiver (or off) by a reload.

use strict;
use warnings;
use Test::More;
use IO::Socket::INET;
use Digest::SHA qw(hmac_sha256_hex);
use lib 't/lib';
use Herald::Test;

Herald::Test->require_binary;

my $t = Herald::Test->new;
my $dir = $t->dir;
my ($port, $lock) = Herald::Test::_pick_port();

# the receiver: fails the first 2 POSTs with 500, then answers 200; each
# request is appended (status, signature, body) to a file
my $pid = fork // die;
if ($pid == 0) {
    my $srv = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $port,
        Listen => 16, ReuseAddr => 1) or exit 1;
    my $n = 0;
    while (my $c = $srv->accept) {
        {
            my ($head, $line) = ('');
            while (defined($line = <$c>)) { last if $line eq "\r\n"; $head .= $line; }
            last unless defined $line && $head;
            my ($len) = $head =~ /Content-Length: (\d+)/i;
            my ($sig) = $head =~ /X-Herald-Signature: (\S+)/i;
            my $body = '';
            read($c, $body, $len // 0);
            my $status = ++$n <= 2 ? 500 : 200;
            open(my $f, '>>', "$dir/hook.log");
            print $f "$status\t" . ($sig // '-') . "\t$body\n";
            close $f;
            # one request per connection: this receiver serves one at a time
            print $c "HTTP/1.1 $status X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        }
        close $c;
    }
    exit 0;
}
END { kill 'TERM', $pid if $pid; }

$t->default_conf(workers => 2, extra => <<"CONF");
event_webhook http://127.0.0.1:$port/hook;
event_webhook_secret whsec-123456;
CONF
$t->run;

sub hooked {
    my @ok;
    open(my $f, '<', "$dir/hook.log") or return ();
    while (<$f>) {
        chomp;
        my ($st, $sig, $body) = split /\t/, $_, 3;
        push @ok, [$st, $sig, $body];
    }
    return @ok;
}

$t->http(PUT => '/v1/users/wh1', body => { email => 'wh1@example.com' });
$t->http(PUT => '/v1/users/wh2', body => { email => 'wh2@example.com' });
for (1 .. 3) {
    $t->http(POST => '/v1/notifications', body => { user_id => "wh$_", body => 'x' })
        for 1 .. 2;
}
ok($t->wait_for(sub { grep { $_->[0] == 200 } hooked() }, 20),
    'a batch got through after the receiver recovered');
my @calls = hooked();
is($calls[0][0], 500, 'the first attempt failed');
like($t->error_log, qr/event webhook failed/, 'the failure is logged');
my (%seen, $bad_sig, @types);
ok($t->wait_for(sub {
    %seen = ();
    for my $c (grep { $_->[0] == 200 } hooked()) {
        my $d = Herald::Test->json_decode($c->[2]) or next;
        $seen{ $_->{id} }++ for @{ $d->{events} };
    }
    # 6 notifications: accepted + delivered each
    keys %seen >= 12;
}, 20), 'every event arrived') or diag scalar(keys %seen);
for my $c (hooked()) {
    $bad_sig++ if $c->[1] ne 'sha256=' . hmac_sha256_hex($c->[2], 'whsec-123456');
}
ok(!$bad_sig, 'every body carries a valid HMAC-SHA256 signature');
is(scalar(grep { $_ > 1 } values %seen), 0, 'no event acknowledged twice');

# restart: acknowledged events are not sent again
my $before = () = hooked();
$t->stop;
$t->run;
$t->http(POST => '/v1/notifications', body => { user_id => 'wh1', body => 'after' });
ok($t->wait_for(sub { keys(%{ { map { $_->{id} => 1 } map {
    @{ (Herald::Test->json_decode($_->[2]) // {})->{events} // [] } } grep { $_->[0] == 200 } hooked() } }) >= 14 }, 20),
    'new events after the restart arrive');
my %again;
for my $c (grep { $_->[0] == 200 } (hooked())[$before .. scalar(hooked()) - 1]) {
    my $d = Herald::Test->json_decode($c->[2]) or next;
    $again{ $_->{id} }++ for grep { $seen{ $_->{id} } } @{ $d->{events} };
}
is(scalar(keys %again), 0, 'events acknowledged before the restart are not re-sent');

# ==== a reload moves the webhook ==========================================
# receiver B answers 200 to every POST; after a SIGHUP to it, new events go
# to B, none to A, and none that A acknowledged; without event_webhook
# nothing is sent and nothing fails

my ($bport, $block) = Herald::Test::_pick_port();
my $bpid = fork // die;
if ($bpid == 0) {
    my $srv = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $bport,
        Listen => 16, ReuseAddr => 1) or exit 1;
    while (my $c = $srv->accept) {
        my ($head, $line) = ('');
        while (defined($line = <$c>)) { last if $line eq "\r\n"; $head .= $line; }
        if ($head) {
            my ($len) = $head =~ /Content-Length: (\d+)/i;
            my $body = '';
            read($c, $body, $len // 0);
            open(my $f, '>>', "$dir/hook-b.log");
            print $f "$body\n";
            close $f;
            print $c "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        }
        close $c;
    }
    exit 0;
}
END { kill 'TERM', $bpid if $bpid; }

# event ids acknowledged by A, and those B received
sub ids_a {
    my %id;
    for my $c (grep { $_->[0] == 200 } hooked()) {
        $id{ $_->{id} } = 1
            for @{ (Herald::Test->json_decode($c->[2]) // {})->{events} // [] };
    }
    return \%id;
}
sub ids_b {
    my %id;
    open(my $f, '<', "$dir/hook-b.log") or return \%id;
    while (<$f>) {
        $id{ $_->{id} } = 1
            for @{ (Herald::Test->json_decode($_) // {})->{events} // [] };
    }
    return \%id;
}

sub hup {
    my ($extra) = @_;
    my $off = length $t->error_log;
    my $line;
    $t->write_conf($t->default_conf_text(workers => 2, extra => $extra));
    kill 'HUP', $t->pid;
    $t->wait_for(sub {
        ($line) = substr($t->error_log, $off)
            =~ /^(.*(?:configuration reloaded|reload refused).*)$/m;
        $line;
    }, 10, 0.05);
    sleep 0.3;    # the workers take the conf at their next inbox turn
    return $line // '';
}

sleep 1;    # A has acknowledged every event so far (checked above)
like(hup("event_webhook http://127.0.0.1:$bport/b;\n"),
    qr/configuration reloaded/, 'reload: URL changed to B, accepted');
my $a_before = ids_a();
$t->http(POST => '/v1/notifications', body => { user_id => 'wh2', body => 'to b' });
ok($t->wait_for(sub { keys(%{ ids_b() }) >= 2 }, 20),
    'reload: the new events arrive at B') or diag(explain ids_b());
is_deeply(ids_a(), $a_before, 'reload: A gets none of them');
is(scalar(grep { $a_before->{$_} } keys %{ ids_b() }), 0,
    'reload: B gets nothing A acknowledged');

like(hup(''), qr/configuration reloaded/,
    'reload: event_webhook removed, accepted');
my $b_before = ids_b();
my $off = length $t->error_log;
my $r = $t->http(POST => '/v1/notifications', body => { user_id => 'wh1', body => 'off' });
is($r->{status}, 202, 'no event_webhook: a send is accepted');
sleep 1.5;
is_deeply(ids_b(), $b_before, 'no event_webhook: nothing at B');
is_deeply(ids_a(), $a_before, 'no event_webhook: nothing at A');
unlike(substr($t->error_log, $off), qr/webhook/, 'no event_webhook: no error')
    or diag(substr($t->error_log, $off));

$t->stop;
done_testing;
